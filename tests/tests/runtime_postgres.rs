//! A whole campaign run by the runtime on PostgreSQL (its own test binary: actor names are
//! global to a process, and each backend's runtime uses the same ids).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_runs_to_completion_on_postgres() {
    if let Some(db) = switchboard_engine::store::testing::TestDb::postgres().await {
        switchboard_tests::campaign_run::a_campaign_runs_to_completion_with_retries_and_compliance(
            db,
        )
        .await;
    }
}
