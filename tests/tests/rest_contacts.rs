//! Contacts, lists, the do-not-call list and previews over real HTTP on both backends:
//! CSV import with its per-row report (all or nothing, or skipping bad rows), search by
//! text and by audience query, export, lists, DNC add/check/import/remove, audience and
//! template previews, and every refusal naming its field.

use serde_json::json;
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

const CSV: &str = "phone,name,neighborhoods,property_value\n\
+14155550101,Ada,mlaqa;taadhi,1500000\n\
(415) 555-0102,Bob,taadhi,800000\n\
12,Cy,mlaqa,1\n";

async fn contacts_lists_dnc_and_previews(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let api = Api::new_tenant(&server, "acme").await;

    // All or nothing: the bad row is named (row, line, column) and nothing is stored.
    let refused = api
        .post_text("/api/v1/contacts/import?region=US", "text/csv", CSV)
        .await;
    assert_eq!(refused.status, 422, "{:#}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["field"],
        "row 3 (line 4, column phone)"
    );
    assert_eq!(refused.body["report"]["committed"], false);
    assert_eq!(api.get("/api/v1/contacts").await.body["items"], json!([]));

    let imported = api
        .post_text(
            "/api/v1/contacts/import?region=US&mode=skip_bad_rows&list=spring",
            "text/csv",
            CSV,
        )
        .await;
    assert_eq!(imported.status, 200, "{:#}", imported.body);
    assert_eq!(
        (
            imported.body["inserted"].as_u64(),
            imported.body["rejected"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(imported.body["errors"][0]["row"], 3);
    assert_eq!(imported.body["list"]["contacts"], 2);
    let bad_mode = api
        .post_text("/api/v1/contacts/import?mode=some", "text/csv", CSV)
        .await;
    assert_eq!(bad_mode.body["errors"][0]["field"], "mode");

    // Search by text and by audience query, with pages.
    let found = api.get("/api/v1/contacts?q=ada").await;
    assert_eq!(found.body["items"][0]["name"], "Ada");
    let rich = api
        .get("/api/v1/contacts?query=%7B%22property_value%22%3A%7B%22%24gt%22%3A1000000%7D%7D")
        .await;
    assert_eq!(rich.status, 200, "{:#}", rich.body);
    assert_eq!(rich.body["items"].as_array().unwrap().len(), 1);
    let bad_query = api
        .get("/api/v1/contacts?query=%7B%22x%22%3A%7B%22%24near%22%3A1%7D%7D")
        .await;
    assert_eq!(bad_query.status, 422, "{:#}", bad_query.body);
    assert!(
        bad_query.body["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("query")
    );
    let page = api.get("/api/v1/contacts?limit=1").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = api
        .get(&format!("/api/v1/contacts?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next.body["items"][0]["name"], "Bob");

    // Create, read, replace, delete one contact; bad fields are named.
    let bad = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "nope", "timezone": "Mars/Base"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let fields: Vec<_> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, [json!("phone"), json!("timezone")]);
    let dee = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550104", "name": "Dee"}),
        )
        .await;
    assert_eq!(dee.status, 201);
    let again = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550104", "company": "Acme"}),
        )
        .await;
    assert_eq!(again.status, 200, "the same phone updates");
    let id = dee.body["id"].as_i64().unwrap();
    let replaced = api
        .put(
            &format!("/api/v1/contacts/{id}"),
            json!({"phone": "+14155550105", "name": "Dee D"}),
        )
        .await;
    assert_eq!(
        (replaced.status.as_u16(), replaced.body["phone"].clone()),
        (200, json!("+14155550105"))
    );
    let taken = api
        .put(
            &format!("/api/v1/contacts/{id}"),
            json!({"phone": "+14155550101"}),
        )
        .await;
    assert_eq!(taken.status, 409);
    assert_eq!(
        api.delete(&format!("/api/v1/contacts/{id}")).await.status,
        204
    );
    assert_eq!(api.get(&format!("/api/v1/contacts/{id}")).await.status, 404);
    assert_eq!(
        api.get("/api/v1/contacts/abc").await.body["errors"][0]["field"],
        "id"
    );

    let export = api.get("/api/v1/contacts/export").await;
    assert!(export.content_type.starts_with("text/csv"));
    assert_eq!(export.text().lines().count(), 3, "{}", export.text());

    // Lists.
    let lists = api.get("/api/v1/lists").await;
    let spring = lists.body["items"][0]["id"].as_i64().unwrap();
    assert_eq!(
        api.post("/api/v1/lists", json!({"name": "spring"}))
            .await
            .status,
        409
    );
    let members = api.get(&format!("/api/v1/lists/{spring}")).await;
    assert_eq!(members.body["members"].as_array().unwrap().len(), 2);

    // Previews.
    let preview = api
        .post(
            "/api/v1/audience/preview",
            json!({"query": {"property_value": {"$gt": 0}}, "lists": [spring], "sample": 1}),
        )
        .await;
    assert_eq!(
        (
            preview.body["count"].as_u64(),
            preview.body["sample"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1)),
        "{:#}",
        preview.body
    );
    let ada = found.body["items"][0]["id"].as_i64().unwrap();
    let text = api
        .post("/api/v1/templates/preview", json!({"template": "Hi {name}, {unit_type|a home} in {vars.city} {missing}", "contact_id": ada, "variables": {"city": "Doha"}}))
        .await;
    assert_eq!(
        text.body["text"], "Hi Ada, a home in Doha ",
        "{:#}",
        text.body
    );
    assert_eq!(text.body["missing"], json!(["missing"]));
    let broken = api
        .post(
            "/api/v1/templates/preview",
            json!({"template": "Hi {name", "contact_id": ada}),
        )
        .await;
    assert_eq!(broken.body["errors"][0]["field"], "template");
    // A contact's attributes are bounded, and so is a JSON body on the contact routes.
    let fat = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550999", "attributes": {"notes": "x".repeat(70 * 1024)}}),
        )
        .await;
    assert_eq!(
        (fat.status.as_u16(), fat.body["errors"][0]["field"].clone()),
        (422, json!("attributes")),
        "{:#}",
        fat.body
    );
    let huge = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550999", "attributes": {"list": vec![0; 200_000]}}),
        )
        .await;
    assert_eq!(huge.status.as_u16(), 413, "{:#}", huge.body);
    // A template that would render gigabytes is refused before it renders, and one that
    // renders past the output limit is refused naming the template.
    let huge_var = "x".repeat(512 * 1024);
    let flood = api
        .post(
            "/api/v1/templates/preview",
            json!({"template": "{vars.a}".repeat(2000), "contact_id": ada, "variables": {"a": huge_var}}),
        )
        .await;
    assert_eq!(
        (
            flood.status.as_u16(),
            flood.body["errors"][0]["field"].clone()
        ),
        (422, json!("variables.a")),
        "{:#}",
        flood.body
    );
    let wide = api
        .post(
            "/api/v1/templates/preview",
            json!({"template": "{vars.a}".repeat(2000), "contact_id": ada, "variables": {"a": "x".repeat(4000)}}),
        )
        .await;
    assert_eq!(
        (
            wide.status.as_u16(),
            wide.body["errors"][0]["field"].clone()
        ),
        (422, json!("template")),
        "{:#}",
        wide.body
    );

    // Do-not-call.
    assert_eq!(
        api.post(
            "/api/v1/dnc",
            json!({"pattern": "+1900*", "reason": "premium"})
        )
        .await
        .status,
        201
    );
    let bad = api.post("/api/v1/dnc", json!({"pattern": "+1x*"})).await;
    assert_eq!(
        (bad.status.as_u16(), bad.body["errors"][0]["field"].clone()),
        (422, json!("pattern"))
    );
    let check = api.get("/api/v1/dnc/check?number=%2B19005550100").await;
    assert_eq!(
        (
            check.body["listed"].clone(),
            check.body["entry"]["reason"].clone()
        ),
        (json!(true), json!("premium"))
    );
    let listing = "phone\n+14155550101\nnot a number\n";
    let refused = api
        .post_text("/api/v1/dnc/import", "text/plain", listing)
        .await;
    assert_eq!(
        (
            refused.status.as_u16(),
            refused.body["errors"][0]["field"].clone()
        ),
        (422, json!("line 3"))
    );
    let skipped = api
        .post_text(
            "/api/v1/dnc/import?mode=skip_bad_rows",
            "text/plain",
            listing,
        )
        .await;
    assert_eq!(skipped.body["added"], 1, "{:#}", skipped.body);
    assert_eq!(
        api.get("/api/v1/dnc").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(api.delete("/api/v1/dnc/%2B14155550101").await.status, 204);
    assert_eq!(api.delete("/api/v1/dnc/%2B14155550101").await.status, 404);
    assert_eq!(
        api.get("/api/v1/dnc/check?number=%2B14155550101")
            .await
            .body["listed"],
        false
    );
    assert_eq!(
        api.get("/api/v1/dnc/check").await.body["errors"][0]["field"],
        "number"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_lists_dnc_and_previews_on_sqlite() {
    contacts_lists_dnc_and_previews(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_lists_dnc_and_previews_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    contacts_lists_dnc_and_previews(db).await;
}
