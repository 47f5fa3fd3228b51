//! What a request keeps of its policies without a heap allocation in the
//! usual case, and how it names a rule without cloning it.
//!
//! A request's token holds and budget charges are usually one or two, so
//! [`Few`] keeps the first inline. They name their rule by its
//! [`RuleAt`] among the request's rule lists — the caller's levels and the
//! model's, which the request keeps alive anyway — instead of holding an
//! `Arc` of it: a clone and a drop of a shared `Arc` are writes to a cache
//! line every worker shares, at admission and again at the settlement.

/// The first item inline, the rest on the heap.
#[derive(Clone, Debug)]
pub struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Few<T> {
    pub fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// Where a rule is among a request's rules: in list 0 (the caller's
/// levels) or 1 (the model's), at `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleAt {
    pub list: u8,
    pub index: u32,
}

impl RuleAt {
    /// Every rule of `lists` with its place, in order.
    pub fn placed<T>(lists: [&[T]; 2]) -> impl Iterator<Item = (&T, RuleAt)> {
        lists.into_iter().zip(0u8..).flat_map(|(list, n)| {
            list.iter()
                .zip(0u32..)
                .map(move |(rule, index)| (rule, RuleAt { list: n, index }))
        })
    }

    /// The place of `rule` (compared by address) among `lists`.
    pub fn of<T>(lists: [&[T]; 2], rule: &T) -> Option<RuleAt> {
        RuleAt::placed(lists).find_map(|(r, at)| std::ptr::eq(r, rule).then_some(at))
    }

    /// The rule at this place of `lists`.
    pub fn get<T>(self, lists: [&[T]; 2]) -> Option<&T> {
        lists.get(usize::from(self.list))?.get(self.index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_inline_and_order_is_kept() {
        let mut f = Few::default();
        assert!(f.is_empty() && f.iter().next().is_none());
        for i in 1..=3 {
            f.push(i);
        }
        assert_eq!((f.len(), f.rest.len()), (3, 2));
        assert_eq!(f.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(f.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_place_finds_its_rule_again() {
        let (a, b) = (["a0", "a1"], ["b0"]);
        let lists = [&a[..], &b[..]];
        for (rule, at) in RuleAt::placed(lists) {
            assert_eq!(RuleAt::of(lists, rule), Some(at));
            assert_eq!(at.get(lists), Some(rule));
        }
        assert_eq!(RuleAt::of(lists, &"a1"), None, "by address, not value");
        let far = RuleAt { list: 1, index: 1 };
        assert_eq!(far.get(lists), None);
        assert_eq!(RuleAt { list: 2, index: 0 }.get(lists), None);
    }
}
