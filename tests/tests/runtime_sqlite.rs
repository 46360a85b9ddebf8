//! A whole campaign run by the runtime on SQLite (its own test binary: actor names are
//! global to a process, and each backend's runtime uses the same ids).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_runs_to_completion_on_sqlite() {
    let db = switchboard_engine::store::testing::TestDb::sqlite().await;
    switchboard_tests::campaign_run::a_campaign_runs_to_completion_with_retries_and_compliance(db)
        .await;
}
