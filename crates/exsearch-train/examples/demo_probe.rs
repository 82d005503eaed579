use exsearch_core::CancelToken;
use exsearch_train::demo::{run_demo, DemoConfig, DemoEvent};

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("/tmp/demo".into()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = DemoConfig::default();
    if let Ok(j) = std::env::var("DEMO_CONFIG") {
        config = serde_json::from_str(&j)?;
    }
    let t = std::time::Instant::now();
    let report = run_demo(
        &dir,
        &config,
        &|e: DemoEvent| match &e {
            DemoEvent::Step { record, .. } if record.step % 10 != 0 => {}
            e => eprintln!(
                "{:7.1}s {}",
                t.elapsed().as_secs_f64(),
                serde_json::to_string(e).unwrap()
            ),
        },
        &CancelToken::new(),
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
