//! Load benchmark for `authdeck proxy` (placeholder while the real one is written).
fn main() {}
