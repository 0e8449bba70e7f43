//! Property tests: the expression and pipeline parsers never panic on arbitrary input.

use pendo_sim::{SimConfig, Simulator};
use proptest::prelude::*;

fn sim() -> &'static Simulator {
    static SIM: std::sync::OnceLock<Simulator> = std::sync::OnceLock::new();
    SIM.get_or_init(|| Simulator::new(SimConfig::tiny()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn expression_parser_never_panics(s in "[a-z0-9_.()\\[\\]`\"!=<>&|+*/%, -]{0,80}") {
        if let Ok(e) = pendo_sim::expr::parse(&s) {
            let ctx = sim().eval_ctx();
            let _ = pendo_sim::expr::eval::eval(&e, &serde_json::json!({"a": 1, "b": "x"}), &ctx);
        }
    }

    #[test]
    fn expression_parser_never_panics_any_unicode(s in "\\PC{0,60}") {
        let _ = pendo_sim::expr::parse(&s);
    }

    #[test]
    fn pipeline_parser_never_panics(s in "[\\[\\]{}:,\"a-zA-Z0-9 -]{0,120}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            let _ = sim().run_aggregation(&v);
        }
    }

    #[test]
    fn structured_pipelines_never_panic(
        op in prop::sample::select(vec!["filter","eval","select","group","sort","limit","skip","count",
            "identified","segment","bulkExpand","unwind","merge","reduce","source","pes","nope"]),
        arg in prop::sample::select(vec!["null","1","-1","\"a\"","\"!\"","[]","[1]","{}",
            "{\"x\":1}","{\"x\":\"a ==\"}","{\"group\":[\"a\"],\"fields\":[{\"n\":{\"sum\":\"a\"}}]}",
            "{\"id\":\"seg-admins\"}","{\"v\":{\"visitor\":\"visitorId\"}}","{\"field\":\"a\"}",
            "{\"fields\":[\"a\"],\"pipeline\":[]}"]),
        ts in prop::sample::select(vec!["{\"period\":\"dayRange\",\"first\":\"now()\",\"count\":-2}",
            "{\"period\":\"hourRange\",\"first\":0,\"last\":\"x\"}", "null", "{}",
            "{\"period\":\"dayRange\",\"first\":\"date(99999,1,1)\",\"count\":99999}"]),
    ) {
        let body = format!(
            "[{{\"source\":{{\"events\":null,\"timeSeries\":{ts}}}}},{{\"{op}\":{arg}}},{{\"limit\":5}}]");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
            let _ = sim().run_aggregation(&v);
        }
    }
}
