//! The Store conformance suite: every case runs against SQLite and against PostgreSQL
//! (127.0.0.1:5432, a fresh database per case), and both must behave the same.

use serde_json::json;
use switchboard_engine::campaign::{
    AgentConfig, CampaignConfig, CampaignStatus, Cause, LivekitAllowlist,
};
use switchboard_engine::contact::NewContact;
use switchboard_engine::dnc::DncPattern;
use switchboard_engine::store::{
    ApiKeyScope, AttemptStatus, AttemptUpdate, CallEvent, CampaignFilter, ContactFilter,
    NewAttempt, Store,
};
use switchboard_engine::{ContactId, E164, Error, TenantId, conformance};

conformance!(
    tenants_and_their_api_keys,
    operator_keys_and_livekit_allowlists,
    upserting_contacts_merges_by_phone_within_a_tenant,
    an_upsert_never_clears_an_opt_out,
    contacts_of_one_tenant_are_invisible_to_another,
    contacts_can_be_searched_paged_updated_and_deleted,
    contact_lists_hold_only_the_tenants_contacts,
    the_do_not_call_list_blocks_exact_numbers_and_prefixes,
    campaigns_move_only_along_the_lifecycle_and_keep_their_history,
    a_draft_is_scheduled_only_when_ready,
    campaign_configuration_is_validated_and_editable_only_before_running,
    campaigns_are_listed_by_status_and_name,
    an_attempt_is_reserved_once_before_dialing,
    a_tick_reserves_its_attempts_together_and_each_only_once,
    call_events_are_append_only,
    attribute_keys_are_listed_for_export,
);

#[path = "store_conformance/batch.rs"]
mod batch;

fn phone(s: &str) -> E164 {
    E164::parse(s, None).unwrap()
}

fn contact(p: &str, name: Option<&str>, attributes: serde_json::Value) -> NewContact {
    let mut c = NewContact::new(phone(p));
    c.name = name.map(str::to_owned);
    c.attributes = attributes.as_object().cloned().unwrap_or_default();
    c
}

async fn tenant(store: &Store, name: &str) -> TenantId {
    store.create_tenant(name).await.unwrap().id
}

async fn tenants_and_their_api_keys(store: &Store) {
    let a = store.create_tenant("Acme Calls").await.unwrap();
    assert_eq!(store.tenant(a.id).await.unwrap().name, "Acme Calls");
    assert!(matches!(
        store.create_tenant("  ").await,
        Err(Error::Invalid { .. })
    ));
    let limited = store
        .set_tenant_limits(a.id, Some(3), Some(50))
        .await
        .unwrap();
    assert_eq!(
        (limited.max_running_campaigns, limited.max_concurrent_calls),
        (Some(3), Some(50))
    );
    assert!(matches!(
        store.set_tenant_limits(a.id, Some(0), None).await,
        Err(Error::Invalid { .. })
    ));

    let key = store
        .create_api_key(a.id, "ops", "sb_1234", "hash-1", ApiKeyScope::Supervisor)
        .await
        .unwrap();
    let found = store.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.tenant_id, found.scope),
        (key.id, a.id, ApiKeyScope::Supervisor)
    );
    assert!(store.api_key_by_hash("hash-2").await.unwrap().is_none());
    store.revoke_api_key(a.id, key.id).await.unwrap();
    assert!(
        store.api_key_by_hash("hash-1").await.unwrap().is_none(),
        "a revoked key stops working"
    );
    assert_eq!(store.list_api_keys(a.id).await.unwrap().len(), 1);
    assert!(matches!(
        store.revoke_api_key(a.id, key.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn operator_keys_and_livekit_allowlists(store: &Store) {
    let key = store
        .create_operator_key("night shift", "sb_op_1234", "op-hash-1")
        .await
        .unwrap();
    assert_eq!(
        store.operator_key_by_hash("op-hash-1").await.unwrap(),
        Some(key.clone())
    );
    assert!(store.operator_key_is_live(key.id).await.unwrap());
    assert!(
        store.api_key_by_hash("op-hash-1").await.unwrap().is_none(),
        "an operator key is no tenant's key"
    );
    assert!(matches!(
        store.create_operator_key(" ", "sb_op_", "op-hash-2").await,
        Err(Error::Invalid { .. })
    ));
    store.revoke_operator_key(key.id).await.unwrap();
    assert!(
        store
            .operator_key_by_hash("op-hash-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.operator_key_is_live(key.id).await.unwrap());
    assert!(
        store.list_operator_keys().await.unwrap()[0]
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        store.revoke_operator_key(key.id).await,
        Err(Error::NotFound { .. })
    ));

    let a = tenant(store, "a").await;
    let b = tenant(store, "b").await;
    let sip = |trunk: &str| {
        Some(AgentConfig::Sip {
            agent_name: "sarah".into(),
            trunk_id: trunk.into(),
        })
    };
    assert_eq!(
        store.livekit_allowlist(a).await.unwrap(),
        LivekitAllowlist::default()
    );
    let refused = store.check_livekit_agent(a, sip("ST_1").as_ref()).await;
    assert!(matches!(refused, Err(Error::Invalid { ref errors, .. }) if errors.len() == 2));
    let list = LivekitAllowlist {
        trunks: ["ST_1".to_owned(), "ST_2".to_owned()].into(),
        agent_names: ["sarah".to_owned()].into(),
    };
    assert_eq!(store.set_livekit_allowlist(a, &list).await.unwrap(), list);
    store
        .check_livekit_agent(a, sip("ST_2").as_ref())
        .await
        .unwrap();
    assert!(
        store
            .check_livekit_agent(b, sip("ST_2").as_ref())
            .await
            .is_err(),
        "one tenant's allowlist is not another's"
    );
    // Setting replaces, all at once; a blank value changes nothing.
    let narrower = LivekitAllowlist {
        trunks: ["ST_1".to_owned()].into(),
        agent_names: ["sarah".to_owned()].into(),
    };
    store.set_livekit_allowlist(a, &narrower).await.unwrap();
    let blank = LivekitAllowlist {
        trunks: [" ".to_owned()].into(),
        agent_names: Default::default(),
    };
    assert!(matches!(
        store.set_livekit_allowlist(a, &blank).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(store.livekit_allowlist(a).await.unwrap(), narrower);
    let refused = store.check_livekit_agent(a, sip("ST_2").as_ref()).await;
    assert!(
        matches!(&refused, Err(Error::Invalid { errors, .. })
            if errors.len() == 1 && errors[0].field == "agent.trunk_id"),
        "{refused:?}"
    );
    assert!(matches!(
        store
            .set_livekit_allowlist(TenantId(999_999), &narrower)
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn upserting_contacts_merges_by_phone_within_a_tenant(store: &Store) {
    let t = tenant(store, "t").await;
    let first = vec![
        contact(
            "+14155550001",
            Some("Ada"),
            json!({"tier": "gold", "visits": 3}),
        ),
        contact("+14155550002", Some("Bob"), json!({})),
        // The same number twice in one batch: merged in order.
        contact("+14155550001", None, json!({"visits": 4, "vip": true})),
    ];
    let report = store.upsert_contacts(t, &first).await.unwrap();
    assert_eq!((report.inserted, report.updated), (2, 0));
    let ada = store
        .contact_by_phone(t, &phone("+14155550001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.name.as_deref(), Some("Ada"));
    assert_eq!(
        ada.attributes,
        json!({"tier": "gold", "visits": 4, "vip": true})
            .as_object()
            .unwrap()
            .clone()
    );

    let mut again = contact(
        "+14155550001",
        None,
        json!({"tier": "platinum", "note": null}),
    );
    again.email = Some("ada@example.com".into());
    let report = store
        .upsert_contacts(t, &[again, contact("+14155550003", None, json!({}))])
        .await
        .unwrap();
    assert_eq!((report.inserted, report.updated), (1, 1));
    let ada = store.contact(t, ada.id).await.unwrap();
    assert_eq!(
        ada.name.as_deref(),
        Some("Ada"),
        "an empty field keeps the stored value"
    );
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        serde_json::Value::Object(ada.attributes),
        json!({"tier": "platinum", "visits": 4, "vip": true, "note": null})
    );
    assert_eq!(store.count_contacts(t).await.unwrap(), 3);
}

async fn an_upsert_never_clears_an_opt_out(store: &Store) {
    let t = tenant(store, "t").await;
    let c = store
        .upsert_contact(t, &contact("+14155550001", Some("Ada"), json!({})))
        .await
        .unwrap();
    let at = switchboard_engine::time::now();
    store.set_opted_out(t, c.id, Some(at)).await.unwrap();
    store
        .upsert_contacts(t, &[contact("+14155550001", Some("Ada L"), json!({}))])
        .await
        .unwrap();
    let c = store.contact(t, c.id).await.unwrap();
    assert_eq!(c.opted_out_at, Some(at));
    assert_eq!(c.name.as_deref(), Some("Ada L"));
}

async fn contacts_of_one_tenant_are_invisible_to_another(store: &Store) {
    let a = tenant(store, "a").await;
    let b = tenant(store, "b").await;
    let c = store
        .upsert_contact(a, &contact("+14155550001", Some("Ada"), json!({})))
        .await
        .unwrap();
    assert!(matches!(
        store.contact(b, c.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.contact_by_phone(b, &c.phone).await.unwrap().is_none());
    assert!(matches!(
        store.delete_contact(b, c.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .update_contact(b, c.id, &contact("+14155550009", None, json!({})))
            .await,
        Err(Error::NotFound { .. })
    ));
    // The same number is a different contact in another tenant.
    let other = store
        .upsert_contact(b, &contact("+14155550001", Some("Other"), json!({})))
        .await
        .unwrap();
    assert_ne!(other.id, c.id);
    assert_eq!(
        store.contact(a, c.id).await.unwrap().name.as_deref(),
        Some("Ada")
    );
    assert!(
        store
            .list_contacts(b, &ContactFilter::default())
            .await
            .unwrap()
            .iter()
            .all(|x| x.tenant_id == b)
    );
}

async fn contacts_can_be_searched_paged_updated_and_deleted(store: &Store) {
    let t = tenant(store, "t").await;
    let batch: Vec<NewContact> = (0..25)
        .map(|i| {
            contact(
                &format!("+1415555{:04}", 1000 + i),
                Some(&format!("Person {i}")),
                json!({"i": i}),
            )
        })
        .collect();
    store.upsert_contacts(t, &batch).await.unwrap();
    let mut seen = Vec::new();
    let mut filter = ContactFilter {
        limit: Some(10),
        ..Default::default()
    };
    loop {
        let page = store.list_contacts(t, &filter).await.unwrap();
        if page.is_empty() {
            break;
        }
        filter.after = Some(page.last().unwrap().id);
        seen.extend(page);
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
    let found = store
        .list_contacts(
            t,
            &ContactFilter {
                search: Some("person 1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 11, "Person 1 and Person 10..19");
    let literal = store
        .list_contacts(
            t,
            &ContactFilter {
                search: Some("%".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        literal.is_empty(),
        "search text is literal, not a LIKE pattern"
    );

    let target = &seen[0];
    let mut changed = contact("+14155559999", Some("Renamed"), json!({"x": 1}));
    changed.timezone = Some("Europe/Paris".into());
    let updated = store.update_contact(t, target.id, &changed).await.unwrap();
    assert_eq!(
        (updated.phone.as_str(), updated.name.as_deref()),
        ("+14155559999", Some("Renamed"))
    );
    let taken = contact(seen[1].phone.as_str(), None, json!({}));
    assert!(matches!(
        store.update_contact(t, target.id, &taken).await,
        Err(Error::Conflict(_))
    ));
    store.delete_contact(t, target.id).await.unwrap();
    assert!(matches!(
        store.contact(t, target.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.count_contacts(t).await.unwrap(), 24);
}

async fn contact_lists_hold_only_the_tenants_contacts(store: &Store) {
    let a = tenant(store, "a").await;
    let b = tenant(store, "b").await;
    let ada = store
        .upsert_contact(a, &contact("+14155550001", None, json!({})))
        .await
        .unwrap();
    let bob = store
        .upsert_contact(a, &contact("+14155550002", None, json!({})))
        .await
        .unwrap();
    let foreign = store
        .upsert_contact(b, &contact("+14155550003", None, json!({})))
        .await
        .unwrap();
    let list = store.create_list(a, "VIPs").await.unwrap();
    assert!(matches!(
        store.create_list(a, "VIPs").await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store
            .add_to_list(a, list.id, &[ada.id, bob.id, ada.id])
            .await
            .unwrap(),
        2
    );
    let err = store
        .add_to_list(a, list.id, &[foreign.id])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(matches!(
        store.list(b, list.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.list_members(a, list.id).await.unwrap().len(), 2);
    assert_eq!(
        store.remove_from_list(a, list.id, &[bob.id]).await.unwrap(),
        1
    );
    let members: Vec<ContactId> = store
        .list_members(a, list.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(members, vec![ada.id]);
    assert_eq!(store.lists(a).await.unwrap().len(), 1);
    store.delete_list(a, list.id).await.unwrap();
    assert!(
        store.contact(a, ada.id).await.is_ok(),
        "deleting a list keeps its contacts"
    );
}

async fn the_do_not_call_list_blocks_exact_numbers_and_prefixes(store: &Store) {
    let a = tenant(store, "a").await;
    let b = tenant(store, "b").await;
    let exact = DncPattern::parse("+14155550001", None).unwrap();
    let prefix = DncPattern::parse("+1900*", None).unwrap();
    assert_eq!(
        store
            .add_dnc(
                a,
                &[exact.clone(), prefix.clone(), exact.clone()],
                Some("asked"),
                "api"
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .add_dnc(a, std::slice::from_ref(&exact), None, "api")
            .await
            .unwrap(),
        0,
        "already listed"
    );
    let hit = store
        .dnc_check(a, &phone("+14155550001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.pattern, exact);
    assert_eq!(hit.reason.as_deref(), Some("asked"));
    let hit = store
        .dnc_check(a, &phone("+19005550123"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.pattern, prefix);
    assert!(
        store
            .dnc_check(a, &phone("+14155550002"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .dnc_check(b, &phone("+14155550001"))
            .await
            .unwrap()
            .is_none(),
        "lists are per tenant"
    );
    assert_eq!(store.list_dnc(a, None, 10).await.unwrap().len(), 2);
    store.remove_dnc(a, &exact).await.unwrap();
    assert!(
        store
            .dnc_check(a, &phone("+14155550001"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.remove_dnc(a, &exact).await,
        Err(Error::NotFound { .. })
    ));
}

fn ready_config(name: &str) -> CampaignConfig {
    CampaignConfig::from_json(json!({
        "name": name,
        "objective": "lead_generation",
        "audience": {"query": {"neighborhoods": ["mlaqa", "taadhi"]}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello {name|there}, this is Sarah."}
    }))
    .unwrap()
}

async fn campaigns_move_only_along_the_lifecycle_and_keep_their_history(store: &Store) {
    let t = tenant(store, "t").await;
    let c = store
        .create_campaign(t, &ready_config("Spring"))
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    let steps = [
        (CampaignStatus::Scheduled, Cause::User, "ready"),
        (
            CampaignStatus::Active,
            Cause::Scheduler,
            "start time reached",
        ),
        (CampaignStatus::Paused, Cause::Pacing, "quality"),
        (CampaignStatus::Active, Cause::User, "resumed"),
        (
            CampaignStatus::Completed,
            Cause::Scheduler,
            "all contacts done",
        ),
    ];
    for (to, cause, reason) in steps {
        let detail = (cause == Cause::Pacing).then(|| json!({"success_rate": 0.02, "window": 100}));
        let moved = store
            .transition_campaign(t, c.id, to, cause, reason, detail)
            .await
            .unwrap();
        assert_eq!((moved.status, moved.status_reason.as_str()), (to, reason));
    }
    let err = store
        .transition_campaign(t, c.id, CampaignStatus::Active, Cause::User, "again", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transition(_)), "{err}");
    let history = store.campaign_history(t, c.id).await.unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(
        (history[0].from, history[0].to),
        (CampaignStatus::Draft, CampaignStatus::Scheduled)
    );
    assert_eq!(history[2].cause, Cause::Pacing);
    assert_eq!(
        history[2].detail,
        Some(json!({"success_rate": 0.02, "window": 100}))
    );
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    let other = tenant(store, "other").await;
    assert!(matches!(
        store
            .transition_campaign(other, c.id, CampaignStatus::Stopped, Cause::User, "x", None)
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn a_draft_is_scheduled_only_when_ready(store: &Store) {
    let t = tenant(store, "t").await;
    let bare = CampaignConfig::from_json(json!({"name": "Bare"})).unwrap();
    let c = store.create_campaign(t, &bare).await.unwrap();
    let err = store
        .transition_campaign(t, c.id, CampaignStatus::Scheduled, Cause::User, "go", None)
        .await
        .unwrap_err();
    let Error::Invalid { errors, .. } = err else {
        panic!("expected missing fields, got {err}")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"agent") && fields.contains(&"script.template"),
        "{fields:?}"
    );
    assert_eq!(
        store.campaign(t, c.id).await.unwrap().status,
        CampaignStatus::Draft,
        "nothing half-applied"
    );
    assert!(store.campaign_history(t, c.id).await.unwrap().is_empty());
}

async fn campaign_configuration_is_validated_and_editable_only_before_running(store: &Store) {
    let t = tenant(store, "t").await;
    let mut bad = ready_config("Bad");
    bad.priority = 42;
    bad.max_concurrent_calls = 0;
    let Err(Error::Invalid { errors, .. }) = store.create_campaign(t, &bad).await else {
        panic!("must refuse")
    };
    assert!(errors.len() >= 2, "every problem at once: {errors:?}");
    let c = store
        .create_campaign(t, &ready_config("Edit me"))
        .await
        .unwrap();
    let mut edited = ready_config("Edited");
    edited.daily_cap = Some(100);
    let c2 = store
        .update_campaign_config(t, c.id, &edited)
        .await
        .unwrap();
    assert_eq!(
        (c2.config.name.as_str(), c2.config.daily_cap),
        ("Edited", Some(100))
    );
    store
        .transition_campaign(
            t,
            c.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    store
        .transition_campaign(t, c.id, CampaignStatus::Active, Cause::User, "start", None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_campaign_config(t, c.id, &ready_config("Late"))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        matches!(
            store.delete_campaign(t, c.id).await,
            Err(Error::Conflict(_))
        ),
        "not while running"
    );
    store
        .transition_campaign(t, c.id, CampaignStatus::Stopped, Cause::User, "done", None)
        .await
        .unwrap();
    store.delete_campaign(t, c.id).await.unwrap();
    assert!(matches!(
        store.campaign(t, c.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn campaigns_are_listed_by_status_and_name(store: &Store) {
    let t = tenant(store, "t").await;
    for name in ["Spring renewals", "Summer upsell", "spring_bookings"] {
        store.create_campaign(t, &ready_config(name)).await.unwrap();
    }
    let first = store
        .list_campaigns(t, &CampaignFilter::default())
        .await
        .unwrap();
    store
        .transition_campaign(
            t,
            first[0].id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    let spring = store
        .list_campaigns(
            t,
            &CampaignFilter {
                search: Some("SPRING".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(spring.len(), 2);
    let underscore = store
        .list_campaigns(
            t,
            &CampaignFilter {
                search: Some("g_b".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(underscore.len(), 1, "underscore is literal");
    let drafts = store
        .list_campaigns(
            t,
            &CampaignFilter {
                status: Some(CampaignStatus::Draft),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(drafts.len(), 2);
    let page = store
        .list_campaigns(
            t,
            &CampaignFilter {
                after: Some(first[0].id),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, first[1].id);
    assert_eq!(
        store
            .campaigns_in_status(&[CampaignStatus::Scheduled])
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_tick_reserves_its_attempts_together_and_each_only_once(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Batch"))
        .await
        .unwrap();
    let mut contacts = Vec::new();
    for i in 0..5 {
        let c = store
            .upsert_contact(t, &contact(&format!("+1415555010{i}"), None, json!({})))
            .await
            .unwrap();
        contacts.push(c);
    }
    let ids: Vec<ContactId> = contacts.iter().map(|c| c.id).collect();
    store.enqueue_contacts(campaign.id, &ids, 1).await.unwrap();
    let new = |c: &switchboard_engine::contact::Contact, seen: i32| NewAttempt {
        tenant_id: t,
        campaign_id: campaign.id,
        contact_id: c.id,
        phone: c.phone.clone(),
        attempts_seen: seen,
    };
    // Another process reserved the third contact first.
    let taken = store.reserve_attempt(&new(&contacts[2], 0)).await.unwrap();
    let batch: Vec<NewAttempt> = contacts.iter().map(|c| new(c, 0)).collect();
    let reserved = store.reserve_attempts(&batch).await.unwrap();
    assert_eq!(reserved.len(), 5, "one answer per request, in order");
    for (i, (c, r)) in contacts.iter().zip(&reserved).enumerate() {
        if i == 2 {
            assert!(
                r.is_none(),
                "the contact reserved elsewhere is not reserved again"
            );
            continue;
        }
        let r = r.as_ref().expect("reserved");
        assert_eq!(
            (r.contact_id, r.attempt_no, r.status),
            (c.id, 1, AttemptStatus::Reserved)
        );
        assert_eq!(r.phone, c.phone.as_str());
    }
    let all = store.campaign_attempts(campaign.id, 100).await.unwrap();
    assert_eq!(all.len(), 5, "exactly one attempt per contact");
    assert!(all.iter().any(|a| a.id == taken.id));
    // A second batch of the same requests reserves nothing: they are in progress.
    let again = store.reserve_attempts(&batch).await.unwrap();
    assert!(again.iter().all(Option::is_none), "{again:?}");
    assert_eq!(store.reserve_attempts(&[]).await.unwrap(), Vec::new());
    let too_many: Vec<NewAttempt> = (0..=switchboard_engine::store::MAX_RESERVATIONS)
        .map(|_| new(&contacts[0], 0))
        .collect();
    assert!(matches!(
        store.reserve_attempts(&too_many).await,
        Err(Error::Invalid { .. })
    ));
}

async fn an_attempt_is_reserved_once_before_dialing(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Calls"))
        .await
        .unwrap();
    let ada = store
        .upsert_contact(t, &contact("+14155550001", None, json!({})))
        .await
        .unwrap();
    let bob = store
        .upsert_contact(t, &contact("+14155550002", None, json!({})))
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_contacts(campaign.id, &[ada.id], 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .enqueue_contacts(campaign.id, &[ada.id, bob.id], 5)
            .await
            .unwrap(),
        1
    );
    let now = switchboard_engine::time::now();
    let due = store.due_contacts(campaign.id, now, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|q| q.contact_id).collect::<Vec<_>>(),
        vec![bob.id, ada.id],
        "priority first"
    );

    let new = NewAttempt {
        tenant_id: t,
        campaign_id: campaign.id,
        contact_id: ada.id,
        phone: ada.phone.clone(),
        attempts_seen: 0,
    };
    let attempt = store.reserve_attempt(&new).await.unwrap();
    assert_eq!(
        (attempt.attempt_no, attempt.status),
        (1, AttemptStatus::Reserved)
    );
    assert!(
        matches!(store.reserve_attempt(&new).await, Err(Error::Conflict(_))),
        "never twice"
    );
    assert_eq!(
        store
            .due_contacts(campaign.id, now, 10)
            .await
            .unwrap()
            .len(),
        1,
        "in progress is not due"
    );

    let dialed = store
        .update_attempt(
            attempt.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Dialing),
                carrier_call_id: Some("CA123".into()),
                dialed_at: Some(now),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (dialed.status, dialed.carrier_call_id.as_deref()),
        (AttemptStatus::Dialing, Some("CA123"))
    );
    assert_eq!(store.unfinished_attempts().await.unwrap().len(), 1);
    let mut detail = serde_json::Map::new();
    detail.insert("sip_code".into(), json!(486));
    let ended = store
        .update_attempt(
            attempt.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Ended),
                result: Some("busy".into()),
                ended_at: Some(now),
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (ended.result.as_deref(), ended.carrier_call_id.as_deref()),
        (Some("busy"), Some("CA123"))
    );
    assert_eq!(ended.detail.get("sip_code"), Some(&json!(486)));
    assert!(store.unfinished_attempts().await.unwrap().is_empty());

    let later = now + chrono::Duration::minutes(30);
    store
        .requeue_contact(campaign.id, ada.id, Some(later), "busy")
        .await
        .unwrap();
    let entry = store.queue_entry(campaign.id, ada.id).await.unwrap();
    assert_eq!(
        (entry.attempts, entry.state.as_str(), entry.next_attempt_at),
        (1, "queued", Some(later))
    );
    assert!(
        store
            .due_contacts(campaign.id, now, 10)
            .await
            .unwrap()
            .iter()
            .all(|q| q.contact_id != ada.id)
    );
    assert!(
        store
            .due_contacts(campaign.id, later, 10)
            .await
            .unwrap()
            .iter()
            .any(|q| q.contact_id == ada.id)
    );
    let second = store
        .reserve_attempt(&NewAttempt {
            attempts_seen: 1,
            ..new.clone()
        })
        .await
        .unwrap();
    assert_eq!(second.attempt_no, 2);
    assert_eq!(
        store
            .campaign_attempts(campaign.id, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn call_events_are_append_only(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Calls"))
        .await
        .unwrap();
    let ada = store
        .upsert_contact(t, &contact("+14155550001", None, json!({})))
        .await
        .unwrap();
    store
        .enqueue_contacts(campaign.id, &[ada.id], 0)
        .await
        .unwrap();
    let attempt = store
        .reserve_attempt(&NewAttempt {
            tenant_id: t,
            campaign_id: campaign.id,
            contact_id: ada.id,
            phone: ada.phone,
            attempts_seen: 0,
        })
        .await
        .unwrap();
    let at = switchboard_engine::time::now();
    let events = vec![
        CallEvent {
            attempt_id: attempt.id,
            at,
            kind: "carrier.ringing".into(),
            data: json!({"seq": 1}),
        },
        CallEvent {
            attempt_id: attempt.id,
            at,
            kind: "carrier.answered".into(),
            data: json!({"by": "human"}),
        },
    ];
    store.append_events(&events).await.unwrap();
    assert_eq!(store.attempt_events(attempt.id).await.unwrap(), events);
    assert!(
        store
            .append_events(&[CallEvent {
                attempt_id: switchboard_engine::AttemptId(999_999),
                ..events[0].clone()
            }])
            .await
            .is_err()
    );
    assert_eq!(
        store.attempt_events(attempt.id).await.unwrap().len(),
        2,
        "a failed batch adds nothing"
    );
    let db = store.clone();
    assert!(
        db.raw_execute_for_tests("UPDATE call_events SET kind = 'rewritten'")
            .await
            .is_err(),
        "history cannot be rewritten"
    );
}

async fn attribute_keys_are_listed_for_export(store: &Store) {
    let t = tenant(store, "t").await;
    store
        .upsert_contacts(
            t,
            &[
                contact("+14155550001", None, json!({"b": 1, "a": "x"})),
                contact("+14155550002", None, json!({"c": [1, 2], "a": "y"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.contact_attribute_keys(t).await.unwrap(),
        vec!["a", "b", "c"]
    );
}

mod audience {
    use super::*;
    use switchboard_engine::store::Audience;

    conformance!(
        an_audience_is_its_query_its_lists_or_both,
        template_coverage_counts_contacts_with_missing_values,
        a_campaign_with_a_bad_query_or_a_foreign_list_is_refused,
    );

    async fn seed(store: &Store, t: TenantId) -> Vec<ContactId> {
        let rows = vec![
            contact(
                "+14155550001",
                Some("Ada"),
                json!({"neighborhoods": ["mlaqa", "olaya"], "unit_type": "villa"}),
            ),
            contact("+14155550002", None, json!({"neighborhoods": "taadhi"})),
            contact(
                "+14155550003",
                Some("Cy"),
                json!({"neighborhoods": ["narjis"], "unit_type": "flat"}),
            ),
        ];
        store.upsert_contacts(t, &rows).await.unwrap();
        let mut ids = Vec::new();
        for r in &rows {
            ids.push(
                store
                    .contact_by_phone(t, &r.phone)
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            );
        }
        ids
    }

    fn spec(
        query: Option<serde_json::Value>,
        lists: Vec<switchboard_engine::ContactListId>,
    ) -> switchboard_engine::campaign::AudienceSpec {
        switchboard_engine::campaign::AudienceSpec { query, lists }
    }

    async fn ids(store: &Store, t: TenantId, a: &Audience) -> Vec<ContactId> {
        store
            .audience_page(t, a, None, 100)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    }

    async fn an_audience_is_its_query_its_lists_or_both(store: &Store) {
        let t = tenant(store, "t").await;
        let other = tenant(store, "other").await;
        seed(store, other).await;
        let c = seed(store, t).await;
        let list = store.create_list(t, "hot").await.unwrap();
        store.add_to_list(t, list.id, &[c[1], c[2]]).await.unwrap();

        let by_query = Audience::from_spec(&spec(
            Some(json!({"neighborhoods": ["mlaqa", "taadhi"]})),
            vec![],
        ))
        .unwrap();
        assert_eq!(ids(store, t, &by_query).await, vec![c[0], c[1]]);
        assert_eq!(store.count_audience(t, &by_query).await.unwrap(), 2);
        let by_list = Audience::from_spec(&spec(None, vec![list.id])).unwrap();
        assert_eq!(ids(store, t, &by_list).await, vec![c[1], c[2]]);
        let both = Audience::from_spec(&spec(
            Some(json!({"neighborhoods": ["mlaqa", "taadhi"]})),
            vec![list.id],
        ))
        .unwrap();
        assert_eq!(ids(store, t, &both).await, vec![c[1]]);
        let nobody = Audience::from_spec(&spec(None, vec![])).unwrap();
        assert_eq!(store.count_audience(t, &nobody).await.unwrap(), 0);
        let page = store
            .audience_page(t, &by_query, Some(c[0]), 100)
            .await
            .unwrap();
        assert_eq!(page.iter().map(|x| x.id).collect::<Vec<_>>(), vec![c[1]]);
        // Another tenant's list never widens an audience.
        let foreign = store.create_list(other, "x").await.unwrap();
        let via_foreign = Audience::from_spec(&spec(None, vec![foreign.id])).unwrap();
        assert_eq!(store.count_audience(t, &via_foreign).await.unwrap(), 0);
    }

    async fn template_coverage_counts_contacts_with_missing_values(store: &Store) {
        let t = tenant(store, "t").await;
        let c = seed(store, t).await;
        let audience = Audience::from_spec(&spec(Some(json!({})), vec![])).unwrap();
        let script: switchboard_engine::campaign::ScriptConfig = serde_json::from_value(json!({
            "template": "Hello {name}, about the {unit_type} in {neighborhoods|your area}.",
        }))
        .unwrap();
        let coverage = store
            .template_coverage(t, &audience, &script)
            .await
            .unwrap();
        assert_eq!((coverage.audience, coverage.with_missing), (3, 1));
        assert_eq!(coverage.missing_by_placeholder.get("name"), Some(&1));
        assert_eq!(coverage.missing_by_placeholder.get("unit_type"), Some(&1));
        assert_eq!(coverage.examples, vec![c[1]]);
        let mut with_fallback = script.clone();
        with_fallback
            .fallbacks
            .insert("name".into(), "there".into());
        with_fallback
            .fallbacks
            .insert("unit_type".into(), "home".into());
        let coverage = store
            .template_coverage(t, &audience, &with_fallback)
            .await
            .unwrap();
        assert_eq!(coverage.with_missing, 0);
    }

    async fn a_campaign_with_a_bad_query_or_a_foreign_list_is_refused(store: &Store) {
        let t = tenant(store, "t").await;
        let other = tenant(store, "other").await;
        let foreign = store.create_list(other, "theirs").await.unwrap();
        let mut bad = ready_config("Bad query");
        bad.audience.query = Some(json!({"property_value": {"$gt": "lots"}}));
        let Err(Error::Invalid { errors, .. }) = store.create_campaign(t, &bad).await else {
            panic!("must refuse")
        };
        assert_eq!(errors[0].field, "audience.query");
        assert!(errors[0].reason.contains("lots"), "{}", errors[0].reason);
        let mut foreign_list = ready_config("Foreign list");
        foreign_list.audience.lists = vec![foreign.id];
        let Err(Error::Invalid { errors, .. }) = store.create_campaign(t, &foreign_list).await
        else {
            panic!("must refuse")
        };
        assert_eq!(errors[0].field, "audience.lists[0]");
        assert!(
            store
                .list_campaigns(t, &CampaignFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
}

mod settings {
    use super::*;

    conformance!(a_server_setting_is_created_once_and_kept);

    async fn a_server_setting_is_created_once_and_kept(store: &Store) {
        let first = store
            .server_setting_or_init("secret", || "one".into())
            .await
            .unwrap();
        let second = store
            .server_setting_or_init("secret", || "two".into())
            .await
            .unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
        let (a, b) = tokio::join!(
            store.server_setting_or_init("raced", || "a".into()),
            store.server_setting_or_init("raced", || "b".into())
        );
        assert_eq!(a.unwrap(), b.unwrap(), "concurrent first calls agree");
    }
}

mod calls {
    use super::*;
    use switchboard_engine::campaign::Outcome;
    use switchboard_engine::store::{AttemptRecord, CarrierUpdate, OutcomeReport, Recorded};

    conformance!(
        carrier_callbacks_apply_once_and_only_forward,
        a_failed_calls_carrier_codes_and_time_are_stored,
        a_do_not_call_outcome_lists_the_number_and_opts_the_contact_out,
        an_outcome_is_recorded_once,
    );

    async fn attempt(store: &Store) -> AttemptRecord {
        let t = tenant(store, "t").await;
        let campaign = store
            .create_campaign(t, &ready_config("Calls"))
            .await
            .unwrap();
        let ada = store
            .upsert_contact(t, &contact("+14155550001", Some("Ada"), json!({})))
            .await
            .unwrap();
        store
            .enqueue_contacts(campaign.id, &[ada.id], 0)
            .await
            .unwrap();
        store
            .reserve_attempt(&NewAttempt {
                tenant_id: t,
                campaign_id: campaign.id,
                contact_id: ada.id,
                phone: ada.phone,
                attempts_seen: 0,
            })
            .await
            .unwrap()
    }

    fn update(status: AttemptStatus, carrier: &str, seq: u64) -> CarrierUpdate {
        CarrierUpdate {
            carrier_call_id: Some("CA1".into()),
            status: Some(status),
            result: (status == AttemptStatus::Ended).then(|| "completed".to_owned()),
            answered_by: (carrier == "in-progress").then(|| "human".to_owned()),
            sequence: Some(seq),
            carrier_status: carrier.into(),
            at: switchboard_engine::time::now(),
            carrier_at: None,
            error_code: None,
            sip_response_code: None,
        }
    }

    async fn carrier_callbacks_apply_once_and_only_forward(store: &Store) {
        let a = attempt(store).await;
        assert!(
            store
                .apply_carrier_update(a.id, &update(AttemptStatus::Ringing, "ringing", 1))
                .await
                .unwrap()
        );
        // Completed arrives before in-progress, and twice.
        assert!(
            store
                .apply_carrier_update(a.id, &update(AttemptStatus::Ended, "completed", 3))
                .await
                .unwrap()
        );
        assert!(
            !store
                .apply_carrier_update(a.id, &update(AttemptStatus::Ended, "completed", 3))
                .await
                .unwrap()
        );
        assert!(
            !store
                .apply_carrier_update(a.id, &update(AttemptStatus::Answered, "in-progress", 2))
                .await
                .unwrap()
        );
        let a = store.attempt(a.id).await.unwrap();
        assert_eq!(
            a.status,
            AttemptStatus::Ended,
            "a late callback never moves a call backwards"
        );
        assert_eq!(a.result.as_deref(), Some("completed"));
        assert!(
            a.answered_at.is_some(),
            "the late in-progress still records the answer time"
        );
        assert_eq!(a.detail.get("answered_by"), Some(&json!("human")));
        assert_eq!(a.carrier_call_id.as_deref(), Some("CA1"));
        let kinds: Vec<String> = store
            .attempt_events(a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        // The duplicate and the late callback add no event.
        assert_eq!(kinds, vec!["carrier.ringing", "carrier.completed"]);
        // A duplicate of an earlier callback changes nothing either.
        assert!(
            !store
                .apply_carrier_update(a.id, &update(AttemptStatus::Ringing, "ringing", 1))
                .await
                .unwrap()
        );
        assert_eq!(store.attempt_events(a.id).await.unwrap().len(), 2);
        let missing = switchboard_engine::AttemptId(a.id.0 + 1000);
        assert!(matches!(
            store
                .apply_carrier_update(missing, &update(AttemptStatus::Ringing, "ringing", 1))
                .await,
            Err(Error::NotFound { .. })
        ));
    }

    async fn a_failed_calls_carrier_codes_and_time_are_stored(store: &Store) {
        let a = attempt(store).await;
        let carrier_at = chrono::DateTime::parse_from_rfc2822("Mon, 23 Nov 2026 15:00:07 +0000")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let failed = CarrierUpdate {
            result: Some("failed".into()),
            answered_by: None,
            carrier_at: Some(carrier_at),
            error_code: Some(13224),
            sip_response_code: Some(404),
            ..update(AttemptStatus::Ended, "failed", 2)
        };
        assert!(store.apply_carrier_update(a.id, &failed).await.unwrap());
        let a = store.attempt(a.id).await.unwrap();
        assert_eq!(
            (a.error_code, a.sip_response_code),
            (Some(13224), Some(404))
        );
        let events = store.attempt_events(a.id).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].at, carrier_at,
            "the event is at the carrier's time"
        );
        assert_eq!(events[0].data["sip_response_code"], json!(404));
    }

    async fn a_do_not_call_outcome_lists_the_number_and_opts_the_contact_out(store: &Store) {
        let a = attempt(store).await;
        let report = OutcomeReport {
            call_id: None,
            outcome: Outcome::DoNotCall,
            notes: Some("asked to stop".into()),
            callback_at: None,
            transcript: None,
        };
        assert_eq!(
            store.record_outcome(a.id, &report).await.unwrap(),
            Recorded::New
        );
        let hit = store
            .dnc_check(a.tenant_id, &phone(&a.phone))
            .await
            .unwrap()
            .expect("listed at once");
        assert_eq!(hit.source, "agent");
        assert!(
            store
                .contact(a.tenant_id, a.contact_id)
                .await
                .unwrap()
                .opted_out_at
                .is_some()
        );
        let a = store.attempt(a.id).await.unwrap();
        assert_eq!(a.outcome.as_deref(), Some("do_not_call"));
        assert_eq!(a.detail.get("notes"), Some(&json!("asked to stop")));
    }

    async fn an_outcome_is_recorded_once(store: &Store) {
        let a = attempt(store).await;
        let callback = OutcomeReport {
            call_id: None,
            outcome: Outcome::Callback,
            notes: None,
            callback_at: None,
            transcript: None,
        };
        assert!(
            matches!(
                store.record_outcome(a.id, &callback).await,
                Err(Error::Invalid { .. })
            ),
            "a callback needs a time"
        );
        let interested = OutcomeReport {
            outcome: Outcome::Interested,
            transcript: Some(json!("yes please")),
            ..callback.clone()
        };
        assert_eq!(
            store.record_outcome(a.id, &interested).await.unwrap(),
            Recorded::New
        );
        assert_eq!(
            store.record_outcome(a.id, &interested).await.unwrap(),
            Recorded::Repeat
        );
        let other = OutcomeReport {
            outcome: Outcome::NotInterested,
            ..interested
        };
        assert!(matches!(
            store.record_outcome(a.id, &other).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            store.attempt(a.id).await.unwrap().outcome.as_deref(),
            Some("interested")
        );
    }
}

#[path = "store_conformance/leases.rs"]
mod leases;
