//! Supervision and scheduling on both backends. Fail points and actor names are global to
//! a process, so the scenarios run one after the other in one test of their own binary.

use switchboard_engine::store::testing::TestDb;
use switchboard_tests::supervision;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_actors_that_panic_do_not_end_their_campaign_and_scheduled_campaigns_start_on_time() {
    supervision::call_actors_that_panic_do_not_end_their_campaign(TestDb::sqlite().await).await;
    supervision::a_scheduled_campaign_starts_at_its_start_time(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        supervision::call_actors_that_panic_do_not_end_their_campaign(db).await;
    }
    if let Some(db) = TestDb::postgres().await {
        supervision::a_scheduled_campaign_starts_at_its_start_time(db).await;
    }
}
