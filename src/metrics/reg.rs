//! Registering a family: created and registered in one call, its name and labels noted (for
//! the test that every family is documented, and `Metrics::families`).

use super::LATENCY_BUCKETS;
use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// A family's name and label names.
pub struct Family {
    pub name: String,
    pub labels: Vec<String>,
}

/// Creates a family and registers it in one call, noting its name and labels.
pub(super) struct Reg<'a>(
    pub(super) &'a Registry,
    pub(super) std::cell::RefCell<Vec<Family>>,
);

impl Reg<'_> {
    pub(super) fn add<C: Collector + Clone + 'static>(&self, c: C) -> C {
        let mut families = self.1.borrow_mut();
        families.extend(c.desc().iter().map(|d| Family {
            name: d.fq_name.clone(),
            labels: d.variable_labels.clone(),
        }));
        self.0
            .register(Box::new(c.clone()))
            .expect("each metric is registered once");
        c
    }
    pub(super) fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("static metric definition"))
    }
    pub(super) fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("static metric definition"))
    }
    pub(super) fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("static metric"))
    }
    pub(super) fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric"))
    }
    pub(super) fn histograms(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        self.histograms_in(name, help, labels, LATENCY_BUCKETS)
    }
    pub(super) fn histograms_in(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        b: &[f64],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(b.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("static metric definition"))
    }
}
