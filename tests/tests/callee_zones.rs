//! The legal window cannot be escaped through the API: a contact zone outside its number's
//! country is refused at CSV import (row, column `timezone`, reason) and on the contacts
//! API (422), and a campaign cannot turn the number's region off; on both backends.

use serde_json::json;
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

const CSV: &str = "phone,name,timezone\n\
+12125550101,Ada,America/New_York\n\
+12125550102,Bob,Asia/Tokyo\n";

async fn new_yorkers_tagged_tokyo_are_refused(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let api = Api::new_tenant(&server, "acme").await;

    let refused = api
        .post_text("/api/v1/contacts/import", "text/csv", CSV)
        .await;
    assert_eq!(refused.status, 422, "{:#}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["field"],
        "row 2 (line 3, column timezone)"
    );
    let reason = refused.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(reason.contains("Asia/Tokyo"), "{:#}", refused.body);
    assert_eq!(api.get("/api/v1/contacts").await.body["items"], json!([]));

    let created = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+12125550103", "timezone": "Asia/Tokyo"}),
        )
        .await;
    assert_eq!(created.status, 422, "{:#}", created.body);
    assert_eq!(created.body["errors"][0]["field"], "timezone");
    let ok = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+12125550103", "timezone": "America/Chicago"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{:#}", ok.body);
    let id = ok.body["id"].as_i64().unwrap();
    let updated = api
        .put(
            &format!("/api/v1/contacts/{id}"),
            json!({"phone": "+12125550103", "timezone": "Asia/Tokyo"}),
        )
        .await;
    assert_eq!(updated.status, 422, "{:#}", updated.body);
    assert_eq!(updated.body["errors"][0]["field"], "timezone");

    let campaign = api
        .post(
            "/api/v1/campaigns",
            json!({"name": "night owls", "timezone": {"use_number_region": false}}),
        )
        .await;
    assert_eq!(campaign.status, 422, "{:#}", campaign.body);
    assert_eq!(
        campaign.body["errors"][0]["field"],
        "timezone.use_number_region"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_yorkers_tagged_tokyo_are_refused_on_sqlite() {
    new_yorkers_tagged_tokyo_are_refused(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_yorkers_tagged_tokyo_are_refused_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    new_yorkers_tagged_tokyo_are_refused(db).await;
}
