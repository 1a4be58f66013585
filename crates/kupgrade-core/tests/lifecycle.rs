//! The release calendar: queries against the embedded data and the JSON loader's errors.
use jiff::civil::{Date, date};
use kupgrade_core::lifecycle::{ReleaseCalendar, StatusAnswer, SupportStatus, support_window};
use kupgrade_core::{KubeVersion, Minor};

fn m(s: &str) -> Minor {
    s.parse().unwrap()
}
fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}
fn cal() -> &'static ReleaseCalendar {
    ReleaseCalendar::embedded()
}
fn exact(status: SupportStatus) -> StatusAnswer {
    StatusAnswer {
        status,
        estimated: false,
    }
}
fn estimate(status: SupportStatus) -> StatusAnswer {
    StatusAnswer {
        status,
        estimated: true,
    }
}

/// The statuses that carry one date, by that date (known, so `Some`).
fn supported(maintenance_from: Date) -> SupportStatus {
    SupportStatus::Supported {
        maintenance_from: Some(maintenance_from),
    }
}
fn maintenance(end_of_life: Date) -> SupportStatus {
    SupportStatus::MaintenanceMode {
        end_of_life: Some(end_of_life),
    }
}
fn end_of_life(since: Date) -> SupportStatus {
    SupportStatus::EndOfLife { since }
}
fn not_yet(expected: Date) -> SupportStatus {
    SupportStatus::NotYetReleased {
        expected: Some(expected),
    }
}

#[test]
fn embedded_calendar_covers_1_19_to_1_38_in_order() {
    let minors: Vec<String> = cal().minors().iter().map(|r| r.minor.to_string()).collect();
    let expected: Vec<String> = (19..=38).map(|n| format!("1.{n}")).collect();
    assert_eq!(minors, expected);
    assert_eq!(cal().as_of(), Some(date(2026, 9, 15)));
    for r in cal().minors() {
        assert!(
            r.patches.windows(2).all(|w| w[0].version < w[1].version),
            "{}",
            r.minor
        );
        assert_eq!(r.planned, r.minor == m("1.38"), "{}", r.minor);
    }
    let r38 = cal().minor(m("1.38")).unwrap();
    assert_eq!(r38.released, None);
    assert_eq!(r38.planned_release, Some(date(2026, 12, 16)));
    assert!(r38.patches.is_empty());
    let r28 = cal().minor(m("1.28")).unwrap();
    assert_eq!(r28.released, Some(date(2023, 8, 15)));
    assert_eq!(r28.end_of_life, Some(date(2024, 10, 22)));
    assert_eq!(r28.end_of_life_planned, Some(date(2024, 10, 28)));
    assert_eq!(r28.final_patch, Some(v("1.28.15")));
    assert!(cal().minor(m("1.18")).is_none());
}

#[test]
fn status_on_real_dates() {
    let cases: &[(&str, Date, StatusAnswer)] = &[
        // 1.28: released 2023-08-15, maintenance 2024-08-28, end of life 2024-10-22.
        ("1.28", date(2023, 8, 14), exact(not_yet(date(2023, 8, 15)))),
        (
            "1.28",
            date(2023, 8, 15),
            exact(supported(date(2024, 8, 28))),
        ),
        (
            "1.28",
            date(2024, 1, 1),
            exact(supported(date(2024, 8, 28))),
        ),
        (
            "1.28",
            date(2024, 8, 28),
            exact(maintenance(date(2024, 10, 22))),
        ),
        (
            "1.28",
            date(2024, 9, 1),
            exact(maintenance(date(2024, 10, 22))),
        ),
        (
            "1.28",
            date(2024, 10, 22),
            exact(end_of_life(date(2024, 10, 22))),
        ),
        (
            "1.28",
            date(2024, 11, 1),
            exact(end_of_life(date(2024, 10, 22))),
        ),
        // 1.34 uses the 27th.
        (
            "1.34",
            date(2026, 8, 27),
            exact(maintenance(date(2026, 10, 27))),
        ),
        (
            "1.34",
            date(2026, 11, 25),
            exact(end_of_life(date(2026, 10, 27))),
        ),
        // 1.22 kept getting patches after its first EOL; the calendar records the last one.
        (
            "1.22",
            date(2022, 11, 1),
            exact(maintenance(date(2022, 12, 8))),
        ),
        // 1.38 is planned; its planned date is data, not an estimate.
        (
            "1.38",
            date(2026, 11, 25),
            exact(not_yet(date(2026, 12, 16))),
        ),
        // Once the planned date passes, release is assumed and the support dates estimated.
        (
            "1.38",
            date(2027, 1, 10),
            estimate(supported(date(2027, 12, 28))),
        ),
        (
            "1.38",
            date(2028, 3, 1),
            estimate(end_of_life(date(2028, 2, 28))),
        ),
        // Past the table: 1.40 expected two cadences (8 months) after 1.38.
        (
            "1.40",
            date(2026, 11, 25),
            estimate(not_yet(date(2027, 8, 16))),
        ),
        (
            "1.40",
            date(2028, 9, 1),
            estimate(maintenance(date(2028, 10, 28))),
        ),
        // Older than the table: end of life no later than 1.19's end of life.
        (
            "1.18",
            date(2024, 1, 1),
            estimate(end_of_life(date(2021, 10, 28))),
        ),
        ("1.18", date(2020, 1, 1), exact(SupportStatus::Unknown)),
        ("2.0", date(2024, 1, 1), exact(SupportStatus::Unknown)),
    ];
    for (minor, on, want) in cases {
        assert_eq!(cal().status(m(minor), *on), *want, "{minor} on {on}");
    }
}

#[test]
fn the_support_window_rule_reproduces_the_recorded_dates() {
    // Where the calendar records both dates and they follow the rule (28th of month +12/+14).
    let mut checked = 0;
    for r in cal().minors() {
        let (Some(rel), Some(mm)) = (r.released, r.maintenance_mode_start) else {
            continue;
        };
        let Some(eol) = r.end_of_life_planned else {
            continue;
        };
        if mm.day() != 28 {
            continue; // 1.34 uses the 27th
        }
        assert_eq!(support_window(rel), (Some(mm), Some(eol)), "{}", r.minor);
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} minors checked");
}

#[test]
fn patches() {
    assert_eq!(cal().latest_patch(m("1.28")), Some(v("v1.28.15")));
    assert_eq!(cal().latest_patch(m("1.29")), Some(v("v1.29.15")));
    // Upcoming patches are scheduled, not released.
    assert_eq!(cal().latest_patch(m("1.35")), Some(v("v1.35.9")));
    assert_eq!(cal().latest_patch(m("1.38")), None);
    assert_eq!(cal().latest_patch(m("1.18")), None);
    assert_eq!(
        cal().latest_patch_on(m("1.28"), date(2024, 8, 14)),
        Some(v("v1.28.13"))
    );
    assert_eq!(
        cal().latest_patch_on(m("1.28"), date(2024, 8, 13)),
        Some(v("v1.28.12"))
    );
    assert_eq!(cal().latest_patch_on(m("1.28"), date(2023, 8, 1)), None);
    let upcoming = &cal().minor(m("1.35")).unwrap().upcoming_patches;
    assert_eq!(upcoming[0].version, v("1.35.10"));
    assert_eq!(upcoming[0].date, Some(date(2026, 10, 13)));
}

#[test]
fn newest_stable() {
    assert_eq!(
        cal().newest_stable(Some(date(2026, 11, 25))),
        Some(v("v1.37.1"))
    );
    assert_eq!(cal().newest_stable(None), Some(v("v1.37.1")));
    assert_eq!(
        cal().newest_stable(Some(date(2026, 9, 14))),
        Some(v("v1.37.0"))
    );
    assert_eq!(
        cal().newest_stable(Some(date(2024, 1, 1))),
        Some(v("v1.29.0"))
    );
    assert_eq!(
        cal().newest_stable(Some(date(2023, 12, 12))),
        Some(v("v1.28.4"))
    );
    assert_eq!(cal().newest_stable(Some(date(2019, 1, 1))), None);
}

#[test]
fn knows_listed_patches_only() {
    assert!(cal().knows(&v("v1.28.15")));
    assert!(cal().knows(&v("v1.28.15-eks-5e0fdde")));
    assert!(cal().knows(&v("v1.29.3+k3s1")));
    assert!(!cal().knows(&v("v1.28.16")));
    assert!(!cal().knows(&v("v1.35.10")), "upcoming, not released");
    assert!(!cal().knows(&v("v1.30.0-rc.0")));
    assert!(!cal().knows(&v("v1.18.20")));
}

#[test]
fn supported_minors() {
    let s = |d: Date| -> Vec<String> {
        cal()
            .supported_minors(d)
            .into_iter()
            .map(|m| m.to_string())
            .collect()
    };
    assert_eq!(s(date(2024, 1, 1)), ["1.26", "1.27", "1.28", "1.29"]);
    assert_eq!(s(date(2026, 11, 25)), ["1.35", "1.36", "1.37"]);
    // Estimates past the table join the list.
    assert_eq!(s(date(2027, 9, 1)), ["1.37", "1.38", "1.39", "1.40"]);
    assert!(s(date(2019, 1, 1)).is_empty());
}

#[test]
fn display_and_serde() {
    let eol = end_of_life(date(2024, 10, 22));
    assert_eq!(eol.to_string(), "end of life since 2024-10-22");
    assert_eq!(
        serde_json::to_string(&eol).unwrap(),
        r#"{"status":"end_of_life","since":"2024-10-22"}"#
    );
    assert_eq!(
        serde_json::from_str::<SupportStatus>(r#"{"status":"end_of_life","since":"2024-10-22"}"#)
            .unwrap(),
        eol
    );
    assert_eq!(
        supported(date(2024, 8, 28)).to_string(),
        "supported (maintenance mode from 2024-08-28)"
    );
    assert_eq!(
        SupportStatus::MaintenanceMode { end_of_life: None }.to_string(),
        "maintenance mode"
    );
    assert_eq!(
        not_yet(date(2026, 12, 16)).to_string(),
        "not yet released (expected 2026-12-16)"
    );
    assert_eq!(format!("{:<9}|", SupportStatus::Unknown), "unknown  |");
    let answer = cal().status(m("1.40"), date(2026, 11, 25));
    assert_eq!(
        answer.to_string(),
        "not yet released (expected 2027-08-16) (estimated)"
    );
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        r#"{"status":"not_yet_released","expected":"2027-08-16","estimated":true}"#
    );
}

#[test]
fn a_user_calendar_extends_the_embedded_one() {
    let text = r#"{
      "as_of": "2027-01-20",
      "minors": [
        {"minor": "1.38", "status": "released", "released": "2026-12-16",
         "maintenance_mode_start": "2027-12-28", "end_of_life": "2028-02-28",
         "patches": [{"version": "1.38.1", "date": "2027-01-14"},
                     {"version": "1.38.0", "date": "2026-12-16", "tag_date": "2026-12-16"}],
         "some_future_field": {"ignored": true}}
      ]
    }"#;
    let c = ReleaseCalendar::from_json(text, "newer.json").unwrap();
    assert_eq!(c.as_of(), Some(date(2027, 1, 20)));
    assert_eq!(c.latest_patch(m("1.38")), Some(v("1.38.1")));
    assert_eq!(
        c.minor(m("1.38")).unwrap().patches[0].version,
        v("1.38.0"),
        "sorted"
    );
    assert_eq!(
        c.status(m("1.38"), date(2027, 1, 20)),
        exact(supported(date(2027, 12, 28)))
    );
}

#[test]
fn loader_errors_name_source_line_minor_and_field() {
    let minor = |body: &str| {
        format!(r#"{{"minors": [{{"minor": "1.30", "released": "2024-04-17"}}, {body}]}}"#)
    };
    let cases = [
        (
            minor(
                r#"{"minor": "1.28", "patches": [{"version": "1.28.0", "date": "2023-08-15"}, {"version": "1.29.1", "date": null}]}"#,
            ),
            "newer.json:1:145: minor 1.28: field patches[1].version: v1.29.1 is not a patch of 1.28",
        ),
        (
            minor(
                r#"{"minor": "1.28", "patches": [{"version": "1.28.1", "date": "2023-08-15"}, {"version": "v1.28.1", "date": null}]}"#,
            ),
            "newer.json:1:145: minor 1.28: field patches[1].version: v1.28.1 is listed twice",
        ),
        (
            minor(r#"{"minor": "1.28", "patches": [{"version": "1.28.x", "date": null}]}"#),
            r#"newer.json:1:100: minor 1.28: field patches[0].version: "1.28.x" is not a version: unexpected character 'x' in patch"#,
        ),
        (
            minor(
                r#"{"minor": "1.28", "released": "2023-08-15", "maintenance_mode_start": "2023-08-01"}"#,
            ),
            "newer.json:1:128: minor 1.28: field maintenance_mode_start: 2023-08-01 is before released (2023-08-15)",
        ),
        (
            minor(r#"{"minor": "1.28", "released": "2023-08-15", "end_of_life": "2023-08-14"}"#),
            "newer.json:1:117: minor 1.28: field end_of_life: 2023-08-14 is before released (2023-08-15)",
        ),
        (
            minor(r#"{"minor": "1.28", "final_patch": "1.27.3"}"#),
            "newer.json:1:91: minor 1.28: field final_patch: v1.27.3 is not a patch of 1.28",
        ),
        (
            minor(r#"{"minor": "1.28", "status": "cancelled"}"#),
            "newer.json:1:86: minor 1.28: field status: unknown variant `cancelled`, expected `released` or `planned`",
        ),
        (
            minor(r#"{"minor": "1.30"}"#),
            "newer.json:1:68: minor 1.30: field minor: listed twice",
        ),
        (
            minor(r#"{"minor": "1.28.3"}"#),
            r#"newer.json:1:68: minor 1.28.3: field minor: "1.28.3" is not a minor: a minor has no patch (write 1.29, not 1.29.3)"#,
        ),
        (
            minor(r#"{"released": "2023-08-15"}"#),
            "newer.json:1:59: minors[1]: missing field `minor`",
        ),
        (
            r#"{"minors": {}}"#.to_string(),
            "newer.json:1:12: field minors: invalid type: map, expected a sequence",
        ),
        (
            "{\"minors\": [\n  {\"minor\": \"1.28\",}\n]}".to_string(),
            "newer.json:2:20: trailing comma",
        ),
        (
            r#"{"minors": []} x"#.to_string(),
            "newer.json:1:16: trailing characters",
        ),
    ];
    for (text, want) in cases {
        let err = ReleaseCalendar::from_json(&text, "newer.json").unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
        assert_eq!(err.origin(), "newer.json");
    }
    let err = ReleaseCalendar::from_json(
        &minor(r#"{"minor": "1.28", "released": "2023-13-15"}"#),
        "newer.json",
    )
    .unwrap_err();
    assert_eq!(err.minor(), Some("1.28"));
    assert_eq!(err.field(), Some("released"));
    assert_eq!(err.location(), Some((1, 88)), "the date's line and column");
    assert!(
        err.reason().contains("2023-13-15") || err.reason().contains("month"),
        "{err}"
    );
}
