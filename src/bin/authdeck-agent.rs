//! `authdeck-agent`: the agent server alone (docs/agent-protocol.md). `authdeck agent` (and
//! `agent start`) become this executable when it sits beside them in the same version, so the
//! long-running agent maps only the code it runs: no argument parser, dashboard, proxy or
//! devserver (docs/benchmarks.md, "Agent").

fn main() -> std::process::ExitCode {
    authdeck::cli::agent::agent_main()
}
