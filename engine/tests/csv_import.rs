//! CSV import and export against both backends.

use serde_json::json;
use switchboard_engine::export::export_contacts_csv;
use switchboard_engine::import::{ImportMode, ImportOptions, Target, ValueType, import_csv};
use switchboard_engine::store::{ContactFilter, Store};
use switchboard_engine::{E164, Error, conformance};

conformance!(
    a_clean_file_is_imported_with_types_inferred,
    one_bad_row_stops_an_all_or_nothing_import,
    skipping_bad_rows_stores_the_good_ones_and_reports_the_rest,
    reimporting_updates_contacts_by_phone,
    an_unusable_header_changes_nothing,
    export_then_import_reproduces_the_contacts,
);

const SEED_CSV: &str = "\
Name,Phone,Email,Company,Neighborhoods,Booking Status,Last Contacted,Property Value,Zip
Ada Lovelace,+1 415 555 0001,ada@example.com,Analytical,mlaqa;taadhi,pending,2023-11-02,1250000,02134
Bob Byte,(415) 555-0002,,,taadhi,confirmed,2024-03-01T10:00:00+02:00,450000.5,94110
";

fn us() -> ImportOptions {
    ImportOptions {
        default_region: Some("US".into()),
        ..Default::default()
    }
}

async fn a_clean_file_is_imported_with_types_inferred(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let report = import_csv(store, t, SEED_CSV.as_bytes(), &us())
        .await
        .unwrap();
    assert_eq!(
        (
            report.rows,
            report.inserted,
            report.updated,
            report.rejected
        ),
        (2, 2, 0, 0)
    );
    assert!(report.committed);
    let ada = store
        .contact_by_phone(t, &E164::parse("+14155550001", None).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(ada.company.as_deref(), Some("Analytical"));
    assert_eq!(
        serde_json::Value::Object(ada.attributes),
        json!({
            "neighborhoods": ["mlaqa", "taadhi"],
            "booking_status": "pending",
            "last_contacted": "2023-11-02",
            "property_value": 1250000,
            "zip": "02134"
        })
    );
    let bob = store
        .contact_by_phone(t, &E164::parse("+14155550002", None).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.email, None);
    assert_eq!(
        bob.attributes["last_contacted"],
        json!("2024-03-01T08:00:00Z")
    );
    assert_eq!(bob.attributes["property_value"], json!(450000.5));
    assert_eq!(bob.attributes["neighborhoods"], json!("taadhi"));
}

const BAD_CSV: &str = "\
phone,name,email,timezone,score
+14155550001,Ada,ada@example.com,America/New_York,10
555,Shorty,,,
+14155550003,Cy,not-an-email,,
\"+14155550004\",\"Dee, multi
line\",,Mars/Olympus,4
+14155550005,Eve,,,x
";

async fn one_bad_row_stops_an_all_or_nothing_import(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let mut options = ImportOptions::default();
    options.types.insert("score".into(), ValueType::Number);
    let report = import_csv(store, t, BAD_CSV.as_bytes(), &options)
        .await
        .unwrap();
    assert!(!report.committed);
    assert_eq!((report.rows, report.inserted, report.rejected), (5, 0, 4));
    let summary: Vec<(u64, u64, Option<&str>)> = report
        .errors
        .iter()
        .map(|e| (e.row, e.line, e.column.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, 3, Some("phone")),
            (3, 4, Some("email")),
            (4, 5, Some("timezone")),
            (5, 7, Some("score"))
        ]
    );
    assert!(
        report.errors[0].reason.contains("555"),
        "{}",
        report.errors[0].reason
    );
    assert!(
        report.errors[3].reason.contains("\"x\""),
        "{}",
        report.errors[3].reason
    );
    assert_eq!(
        store.count_contacts(t).await.unwrap(),
        0,
        "nothing half-imported"
    );
}

async fn skipping_bad_rows_stores_the_good_ones_and_reports_the_rest(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let options = ImportOptions {
        mode: ImportMode::SkipBadRows,
        ..Default::default()
    };
    let report = import_csv(store, t, BAD_CSV.as_bytes(), &options)
        .await
        .unwrap();
    assert!(report.committed);
    assert_eq!((report.inserted, report.rejected), (2, 3));
    assert_eq!(store.count_contacts(t).await.unwrap(), 2);
    let eve = store
        .contact_by_phone(t, &E164::parse("+14155550005", None).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        eve.attributes["score"],
        json!("x"),
        "inferred, not typed, without a type"
    );
}

async fn reimporting_updates_contacts_by_phone(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    import_csv(store, t, SEED_CSV.as_bytes(), &us())
        .await
        .unwrap();
    let update = "mobile,status,Booking Status\n+14155550001,vip,confirmed\n+14155550009,new,\n";
    let mut options = us();
    options
        .mapping
        .insert("status".into(), Target::Attribute("customer_status".into()));
    let report = import_csv(store, t, update.as_bytes(), &options)
        .await
        .unwrap();
    assert_eq!((report.inserted, report.updated), (1, 1));
    let ada = store
        .contact_by_phone(t, &E164::parse("+14155550001", None).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ada.name.as_deref(),
        Some("Ada Lovelace"),
        "columns not in the file are kept"
    );
    assert_eq!(ada.attributes["booking_status"], json!("confirmed"));
    assert_eq!(ada.attributes["customer_status"], json!("vip"));
    assert_eq!(ada.attributes["zip"], json!("02134"));
}

async fn an_unusable_header_changes_nothing(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let err = import_csv(
        store,
        t,
        "name,email\nAda,a@b.co\n".as_bytes(),
        &ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Import(_)) && err.to_string().contains("no phone column"),
        "{err}"
    );
    let options = ImportOptions {
        default_region: Some("Atlantis".into()),
        ..Default::default()
    };
    let err = import_csv(store, t, SEED_CSV.as_bytes(), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Atlantis"), "{err}");
    assert_eq!(store.count_contacts(t).await.unwrap(), 0);
}

async fn export_then_import_reproduces_the_contacts(store: &Store) {
    let a = store.create_tenant("a").await.unwrap().id;
    import_csv(store, a, SEED_CSV.as_bytes(), &us())
        .await
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(export_contacts_csv(store, a, &mut out).await.unwrap(), 2);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(
            "phone,name,email,company,timezone,consent_at,opted_out_at,booking_status,"
        ),
        "{text}"
    );

    let b = store.create_tenant("b").await.unwrap().id;
    let report = import_csv(
        store,
        b,
        std::io::Cursor::new(text.clone()),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.inserted, report.rejected),
        (2, 0),
        "{:?}",
        report.errors
    );
    let strip = |cs: Vec<switchboard_engine::contact::Contact>| {
        cs.into_iter()
            .map(|c| {
                (
                    c.phone,
                    c.name,
                    c.email,
                    c.company,
                    c.timezone,
                    c.attributes,
                )
            })
            .collect::<Vec<_>>()
    };
    let original = strip(
        store
            .list_contacts(a, &ContactFilter::default())
            .await
            .unwrap(),
    );
    let copy = strip(
        store
            .list_contacts(b, &ContactFilter::default())
            .await
            .unwrap(),
    );
    assert_eq!(original, copy);
}
