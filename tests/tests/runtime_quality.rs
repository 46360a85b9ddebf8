//! Quality auto-pause, on SQLite (its own test binary: actor names are global to a process).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_poor_quality_pauses_itself() {
    let db = switchboard_engine::store::testing::TestDb::sqlite().await;
    switchboard_tests::campaign_run::a_campaign_with_poor_quality_pauses_itself(db).await;
}
