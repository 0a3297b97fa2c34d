//! The benchmark, run with tiny numbers so it cannot rot: it must finish and write every
//! section of its report.

mod common;

#[tokio::test]
async fn the_benchmark_runs_end_to_end_with_tiny_numbers() {
    let out = std::env::temp_dir().join(format!("{}.md", common::unique("bench")));
    let status = tokio::process::Command::new(common::bin_dir().join("chat-bench"))
        .args(["--quick", "--out"])
        .arg(&out)
        .current_dir(common::repo())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(240), status)
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let report = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let chart = out.with_file_name("BENCHMARKS-fanout.svg");
    let svg = std::fs::read_to_string(&chart).expect("the benchmark draws its chart");
    let _ = std::fs::remove_file(&chart);
    assert!(svg.starts_with("<svg") && svg.contains("Node.js peer") && svg.contains("<circle"));
    assert!(
        report.contains("](BENCHMARKS-fanout.svg)"),
        "the report shows the chart"
    );
    assert!(report.contains("| day key on aws-sigv4 (now) |") && report.contains("after ÷ before"));
    for section in [
        "## Fan-out",
        "## CPU per delivery: Rust onMessage vs the Node.js peer",
        "## One message to a room of 30: inline vs chunked",
        "## Cold start",
        "## Warm latency",
        "## Capacity",
        "## Artifacts",
        "## Signing: aws-sigv4 against the former hand-written signer",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    assert!(
        report.contains("| 10 |"),
        "the fan-out table has its rows:\n{report}"
    );
    assert!(
        report.contains("Node.js 20 peer"),
        "the Node peer was measured:\n{report}"
    );
    assert!(report.contains("Node.js peer ÷ Rust ConnectFunction"));
    assert!(report.contains("| inline |") && report.contains("| chunked (10) |"));
}
