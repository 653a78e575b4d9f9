//! Closed sets of label values ([`LabelSet`], declared with `label_set!`) and the handles
//! resolved for all of them up front ([`ByLabel`]), so a hot path does an index, not a label
//! lookup, and a departed backend's series are removed for every value.

use prometheus::{IntCounter, IntCounterVec};
use std::marker::PhantomData;

/// A closed set of label values: every value a label can take, so handles are resolved for
/// all of them up front and a departed backend's series are removed for all of them.
pub trait LabelSet: Copy + 'static {
    /// Every value, in declaration order (`ALL[v.index()] == v`).
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn index(self) -> usize;
}

/// Declares a closed set of label values: a fieldless enum, `ALL` in declaration order, the
/// label text of each (`as_str`), and its [`LabelSet`] impl.
#[macro_export]
macro_rules! label_set {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)+];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$var => $s,)+ }
            }
        }

        impl $crate::metrics::LabelSet for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// One counter per value of `L`, under fixed leading labels: `get(v)` is an index, not a
/// label lookup.
pub struct ByLabel<L> {
    counters: Box<[IntCounter]>,
    _set: PhantomData<L>,
}

impl<L: LabelSet> ByLabel<L> {
    /// The counters `family{leading..., last=v}` for every `v` in `L`.
    pub fn new(family: &IntCounterVec, leading: &[&str]) -> Self {
        let counters = L::ALL
            .iter()
            .map(|v| {
                let mut labels = leading.to_vec();
                labels.push(v.as_str());
                family.with_label_values(&labels)
            })
            .collect();
        ByLabel {
            counters,
            _set: PhantomData,
        }
    }

    pub fn get(&self, v: L) -> &IntCounter {
        &self.counters[v.index()]
    }
}

/// Removes `family{leading..., v}` for every `v` in `L`.
pub fn remove_by<L: LabelSet>(family: &IntCounterVec, leading: &[&str]) {
    for v in L::ALL {
        let mut labels = leading.to_vec();
        labels.push(v.as_str());
        let _ = family.remove_label_values(&labels);
    }
}

/// Removes `family{leading..., a, b}` for every `a` in `A` and `b` in `B`.
pub fn remove_by2<A: LabelSet, B: LabelSet>(family: &IntCounterVec, leading: &[&str]) {
    for a in A::ALL {
        let mut labels = leading.to_vec();
        labels.push(a.as_str());
        remove_by::<B>(family, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    crate::label_set! {
        pub enum Colour {
            Red => "red",
            Blue => "blue",
        }
    }

    #[test]
    fn a_counter_per_value_and_all_of_them_removed_together() {
        let family = IntCounterVec::new(Opts::new("t", "t"), &["who", "colour"]).unwrap();
        let by = ByLabel::<Colour>::new(&family, &["a"]);
        by.get(Colour::Blue).inc();
        by.get(Colour::Blue).inc();
        assert_eq!(family.with_label_values(&["a", "blue"]).get(), 2);
        assert_eq!(family.with_label_values(&["a", "red"]).get(), 0);
        assert_eq!(Colour::ALL, [Colour::Red, Colour::Blue]);
        assert_eq!(Colour::Blue.as_str(), "blue");
        remove_by::<Colour>(&family, &["a"]);
        assert_eq!(
            family.with_label_values(&["a", "blue"]).get(),
            0,
            "a fresh series"
        );
    }
}
