//! Render time of one dashboard frame with 500 accounts at 120×40 (target ≤ 2 ms a frame).
//!
//! Run with `cargo bench --bench ui_render`. Measures with `std::time`, prints mean, p50, p99
//! and max per frame for a few scenarios:
//! - `draw` renders into a fresh-cleared `Buffer` (the view alone);
//! - `terminal` is a full `Terminal::draw` into a `TestBackend` (view + diff + flush), with the
//!   clock advancing one second per frame so the countdowns change as they do when idle.

use authdeck::app::view::{AppEvent, LoginStep};
use authdeck::ui::keymap::Action;
use authdeck::ui::{DashboardState, Msg, Theme, draw, many_accounts, preview_now, update, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use std::hint::black_box;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 500;
const WARMUP: usize = 200;
const ITERS: usize = 3000;

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    let mean = total / u32::try_from(n).unwrap_or(1);
    let p = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "{name:<34} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        mean.as_secs_f64() * 1e6,
        p(0.50).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
        samples[n - 1].as_secs_f64() * 1e6,
    );
}

fn state() -> DashboardState {
    let now = preview_now();
    DashboardState::new(many_accounts(ACCOUNTS, now), now, Theme { color: true })
}

fn bench_draw(name: &str, s: &DashboardState) {
    let area = Rect::new(0, 0, 120, 40);
    let mut buf = Buffer::empty(area);
    for _ in 0..WARMUP {
        buf.reset();
        draw(s, area, &mut buf);
    }
    let samples = (0..ITERS)
        .map(|_| {
            let t = Instant::now();
            buf.reset();
            draw(black_box(s), area, &mut buf);
            black_box(&buf);
            t.elapsed()
        })
        .collect();
    stats(name, samples);
}

fn bench_terminal(name: &str, s: &mut DashboardState) {
    let mut term = match Terminal::new(TestBackend::new(120, 40)) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    let start = s.now;
    let mut samples = Vec::with_capacity(ITERS);
    for i in 0..WARMUP + ITERS {
        update(s, Msg::Tick(start + Duration::from_secs(i as u64)));
        let t = Instant::now();
        let _ = term.draw(|f| view(s, f));
        if i >= WARMUP {
            samples.push(t.elapsed());
        }
    }
    stats(name, samples);
}

fn main() {
    println!("one frame, {ACCOUNTS} accounts, 120x40, {ITERS} iterations (µs)");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "mean", "p50", "p99", "max"
    );

    let s = state();
    bench_draw("draw: list top", &s);

    let mut s = state();
    s.selected = ACCOUNTS - 1;
    bench_draw("draw: last account selected", &s);

    let mut s = state();
    s.filter = "git".to_owned();
    bench_draw("draw: filter \"git\" active", &s);

    let mut s = state();
    let account = s
        .selected_account()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    update(&mut s, Msg::Action(Action::Login));
    update(
        &mut s,
        Msg::Action(Action::Pick(authdeck::app::view::LoginMode::Paste)),
    );
    update(
        &mut s,
        AppEvent::LoginProgress {
            account,
            step: LoginStep::ShowUrl {
                url: "http://127.0.0.1:41234/authorize?response_type=code&client_id=authdeck-demo\
                      &redirect_uri=http%3A%2F%2F127.0.0.1%3A53117%2Fcallback&scope=openid\
                      &state=Zq3xT0p1cS4mPl3StAtE&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
                      &code_challenge_method=S256"
                    .into(),
                expires_at: None,
            },
        }
        .into(),
    );
    bench_draw("draw: paste dialog with QR", &s);

    let mut s = state();
    bench_terminal("terminal: Terminal::draw, ticking", &mut s);
}
