//! Packed `[env][entity][width]` columns: the storage behind `State`, `Control` and `Model` mirrors.
//!
//! A column is one named quantity (`particle_q`, `particle_qd`, `act`, ...) for every entity of its
//! kind in every environment, laid out SoA and env-major so that a contiguous range of environments
//! is a contiguous slice of every column. That is what lets the CPU backend hand disjoint env
//! chunks to threads without copying. This module owns the layout and the views; it knows no
//! physics.

use crate::error::EngineError;
use crate::scalar::Real;

/// Name and shape of one column: `count` entities per environment, `width` scalars per entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub count: usize,
    pub width: usize,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, count: usize, width: usize) -> Self {
        Self { name: name.into(), count, width }
    }
    /// Scalars per environment.
    pub fn per_env(&self) -> usize {
        self.count * self.width
    }
}

/// The shape of a whole column set (shared by a State and its adjoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub specs: Vec<ColumnSpec>,
}

impl Layout {
    pub fn new(specs: Vec<ColumnSpec>) -> Self {
        Self { specs }
    }
    pub fn push(&mut self, spec: ColumnSpec) {
        self.specs.push(spec);
    }
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }
    pub fn spec(&self, name: &str) -> Option<&ColumnSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
    /// Scalars per environment over all columns.
    pub fn per_env(&self) -> usize {
        self.specs.iter().map(ColumnSpec::per_env).sum()
    }
}

/// All columns of one set for `num_envs` environments.
#[derive(Clone, Debug, PartialEq)]
pub struct Columns<T> {
    layout: Layout,
    /// Global index of this set's first environment (non-zero for a chunk copied out of a mirror).
    env0: usize,
    num_envs: usize,
    data: Vec<Vec<T>>,
}

impl<T: Copy + Default> Columns<T> {
    pub fn zeros(layout: Layout, num_envs: usize) -> Self {
        let data = layout.specs.iter().map(|s| vec![T::default(); s.per_env() * num_envs]).collect();
        Self { layout, env0: 0, num_envs, data }
    }
    /// An owned copy of a view (keeps the global env index for error messages).
    pub fn from_view(v: &View<'_, T>) -> Self {
        Self {
            layout: v.layout.clone(),
            env0: v.env0,
            num_envs: v.num_envs,
            data: v.cols.iter().map(|c| c.to_vec()).collect(),
        }
    }
    /// Same layout, all zero (the adjoint of this set starts here).
    pub fn zeros_like<U: Copy + Default>(&self) -> Columns<U> {
        Columns::zeros(self.layout.clone(), self.num_envs)
    }
}

impl<T: Copy> Columns<T> {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }
    pub fn get(&self, name: &str) -> Result<&[T], EngineError> {
        let i = self.index(name)?;
        Ok(&self.data[i])
    }
    pub fn get_mut(&mut self, name: &str) -> Result<&mut [T], EngineError> {
        let i = self.index(name)?;
        Ok(&mut self.data[i])
    }
    /// One environment's slice of a column (`count * width` scalars).
    pub fn env(&self, name: &str, env: usize) -> Result<&[T], EngineError> {
        let i = self.index(name)?;
        let n = self.layout.specs[i].per_env();
        Ok(&self.data[i][env * n..(env + 1) * n])
    }
    pub fn env_mut(&mut self, name: &str, env: usize) -> Result<&mut [T], EngineError> {
        let i = self.index(name)?;
        let n = self.layout.specs[i].per_env();
        Ok(&mut self.data[i][env * n..(env + 1) * n])
    }
    /// Overwrites a whole column, checking its length against the layout.
    pub fn set(&mut self, name: &str, values: &[T]) -> Result<(), EngineError> {
        let col = self.get_mut(name)?;
        if col.len() != values.len() {
            return Err(EngineError::ShapeMismatch {
                column: name.to_string(),
                expected: col.len(),
                found: values.len(),
            });
        }
        col.copy_from_slice(values);
        Ok(())
    }
    pub fn columns(&self) -> impl Iterator<Item = (&ColumnSpec, &[T])> {
        self.layout.specs.iter().zip(self.data.iter().map(Vec::as_slice))
    }
    pub fn columns_mut(&mut self) -> impl Iterator<Item = (&ColumnSpec, &mut Vec<T>)> {
        self.layout.specs.iter().zip(self.data.iter_mut())
    }
    /// Converts every scalar (e.g. f32 mirror → f64 for gradient tests).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> Columns<U> {
        Columns {
            layout: self.layout.clone(),
            env0: self.env0,
            num_envs: self.num_envs,
            data: self.data.iter().map(|c| c.iter().map(|&x| f(x)).collect()).collect(),
        }
    }
    /// Elementwise combination of two sets with the same layout.
    pub fn zip_map<U: Copy, V>(&self, o: &Columns<U>, f: impl Fn(T, U) -> V) -> Columns<V> {
        assert_eq!(self.layout, o.layout, "zip_map on different layouts");
        Columns {
            layout: self.layout.clone(),
            env0: self.env0,
            num_envs: self.num_envs,
            data: self
                .data
                .iter()
                .zip(&o.data)
                .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect())
                .collect(),
        }
    }
    pub fn env0(&self) -> usize {
        self.env0
    }
    /// Appends a column; `data` must hold `num_envs * count * width` scalars.
    pub fn add_column(&mut self, spec: ColumnSpec, data: Vec<T>) -> Result<(), EngineError> {
        if self.layout.index_of(&spec.name).is_some() {
            return Err(EngineError::DuplicateColumn { column: spec.name });
        }
        let expected = spec.per_env() * self.num_envs;
        if data.len() != expected {
            return Err(EngineError::ShapeMismatch { column: spec.name, expected, found: data.len() });
        }
        self.layout.push(spec);
        self.data.push(data);
        Ok(())
    }
    /// Copies a view of the same layout and env count into this set.
    pub fn copy_from_view(&mut self, v: &View<'_, T>) {
        for (d, s) in self.data.iter_mut().zip(&v.cols) {
            d.copy_from_slice(s);
        }
    }
    pub fn fill(&mut self, v: T) {
        for c in self.data.iter_mut() {
            c.fill(v);
        }
    }
    pub fn copy_from(&mut self, o: &Columns<T>) {
        debug_assert_eq!(self.layout, o.layout);
        for (d, s) in self.data.iter_mut().zip(&o.data) {
            d.copy_from_slice(s);
        }
    }
    /// Bytes held (for the tape's memory figure).
    pub fn bytes(&self) -> usize {
        self.data.iter().map(|c| c.len() * std::mem::size_of::<T>()).sum()
    }
    fn index(&self, name: &str) -> Result<usize, EngineError> {
        self.layout.index_of(name).ok_or_else(|| EngineError::UnknownColumn {
            column: name.to_string(),
            available: self.layout.specs.iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// A read-only view of all columns restricted to environments `envs`.
    pub fn view(&self, envs: std::ops::Range<usize>) -> View<'_, T> {
        let cols = self
            .layout
            .specs
            .iter()
            .zip(&self.data)
            .map(|(s, d)| &d[envs.start * s.per_env()..envs.end * s.per_env()])
            .collect();
        View { layout: &self.layout, env0: self.env0 + envs.start, num_envs: envs.len(), cols }
    }
    pub fn view_all(&self) -> View<'_, T> {
        self.view(0..self.num_envs)
    }
    pub fn view_all_mut(&mut self) -> ViewMut<'_, T> {
        let n = self.num_envs;
        self.chunks_mut(std::slice::from_ref(&(0..n))).pop().expect("one chunk")
    }

    /// Splits into disjoint mutable views over the given (sorted, non-overlapping, covering) env ranges.
    pub fn chunks_mut(&mut self, ranges: &[std::ops::Range<usize>]) -> Vec<ViewMut<'_, T>> {
        let mut per_chunk: Vec<Vec<&mut [T]>> = ranges.iter().map(|_| Vec::new()).collect();
        for (s, d) in self.layout.specs.iter().zip(self.data.iter_mut()) {
            let mut rest: &mut [T] = d.as_mut_slice();
            let mut at = 0;
            for (k, r) in ranges.iter().enumerate() {
                assert_eq!(r.start, at, "env ranges must be contiguous");
                let (head, tail) = rest.split_at_mut(r.len() * s.per_env());
                per_chunk[k].push(head);
                rest = tail;
                at = r.end;
            }
        }
        let layout = &self.layout;
        let env0 = self.env0;
        ranges
            .iter()
            .zip(per_chunk)
            .map(|(r, cols)| ViewMut { layout, env0: env0 + r.start, num_envs: r.len(), cols })
            .collect()
    }
}

/// Read-only view of a contiguous range of environments.
pub struct View<'a, T> {
    layout: &'a Layout,
    env0: usize,
    num_envs: usize,
    cols: Vec<&'a [T]>,
}

impl<'a, T: Copy> View<'a, T> {
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }
    /// Global index of the first environment in this view (for error messages).
    pub fn env0(&self) -> usize {
        self.env0
    }
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }
    /// A column over this view's envs; panics only on a name the schedule did not validate.
    pub fn col(&self, name: &str) -> &'a [T] {
        match self.layout.index_of(name) {
            Some(i) => self.cols[i],
            None => panic!("column `{name}` not in layout (schedule validation should catch this)"),
        }
    }
    pub fn try_col(&self, name: &str) -> Option<&'a [T]> {
        self.layout.index_of(name).map(|i| self.cols[i])
    }
    /// Sub-range of environments (local indices).
    pub fn sub(&self, envs: std::ops::Range<usize>) -> View<'a, T> {
        let cols = self
            .layout
            .specs
            .iter()
            .zip(&self.cols)
            .map(|(s, d)| &d[envs.start * s.per_env()..envs.end * s.per_env()])
            .collect();
        View { layout: self.layout, env0: self.env0 + envs.start, num_envs: envs.len(), cols }
    }
}

/// Mutable view of a contiguous range of environments.
pub struct ViewMut<'a, T> {
    layout: &'a Layout,
    env0: usize,
    num_envs: usize,
    cols: Vec<&'a mut [T]>,
}

impl<'a, T: Copy> ViewMut<'a, T> {
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }
    pub fn env0(&self) -> usize {
        self.env0
    }
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }
    fn idx(&self, name: &str) -> usize {
        self.layout
            .index_of(name)
            .unwrap_or_else(|| panic!("column `{name}` not in layout (schedule validation should catch this)"))
    }
    pub fn col(&self, name: &str) -> &[T] {
        self.cols[self.idx(name)]
    }
    pub fn col_mut(&mut self, name: &str) -> &mut [T] {
        let i = self.idx(name);
        self.cols[i]
    }
    pub fn try_col(&self, name: &str) -> Option<&[T]> {
        self.layout.index_of(name).map(|i| &*self.cols[i])
    }
    /// Several distinct columns at once, mutably (e.g. the integrator writes q and qd, reads f).
    pub fn cols_mut<const N: usize>(&mut self, names: [&str; N]) -> [&mut [T]; N] {
        let idx = names.map(|n| self.idx(n));
        match self.cols.get_disjoint_mut(idx) {
            Ok(cols) => cols.map(|c| &mut **c),
            Err(e) => panic!("cols_mut({names:?}): {e:?}"),
        }
    }
    pub fn as_view(&self) -> View<'_, T> {
        View {
            layout: self.layout,
            env0: self.env0,
            num_envs: self.num_envs,
            cols: self.cols.iter().map(|c| &**c).collect(),
        }
    }
    /// Copies all columns from a read view of the same layout and env range.
    pub fn copy_from(&mut self, src: &View<'_, T>) {
        for (d, s) in self.cols.iter_mut().zip(&src.cols) {
            d.copy_from_slice(s);
        }
    }
    pub fn fill(&mut self, v: T) {
        for c in self.cols.iter_mut() {
            c.fill(v);
        }
    }
    /// Iterates `(spec, column)` pairs.
    pub fn columns_mut(&mut self) -> impl Iterator<Item = (&'a ColumnSpec, &mut [T])> {
        self.layout.specs.iter().zip(self.cols.iter_mut().map(|c| &mut **c))
    }
    /// A mutable sub-view of some of this view's environments (local indices).
    pub fn sub_mut(&mut self, envs: std::ops::Range<usize>) -> ViewMut<'_, T> {
        let cols = self
            .layout
            .specs
            .iter()
            .zip(self.cols.iter_mut())
            .map(|(s, d)| &mut d[envs.start * s.per_env()..envs.end * s.per_env()])
            .collect();
        ViewMut { layout: self.layout, env0: self.env0 + envs.start, num_envs: envs.len(), cols }
    }

    /// Splits this view into sub-views of `envs_per_chunk` environments each.
    pub fn split(self, ranges: &[std::ops::Range<usize>]) -> Vec<ViewMut<'a, T>> {
        let mut per_chunk: Vec<Vec<&'a mut [T]>> = ranges.iter().map(|_| Vec::new()).collect();
        for (s, d) in self.layout.specs.iter().zip(self.cols) {
            let mut rest: &'a mut [T] = d;
            for (k, r) in ranges.iter().enumerate() {
                let (head, tail) = rest.split_at_mut(r.len() * s.per_env());
                per_chunk[k].push(head);
                rest = tail;
            }
        }
        let layout = self.layout;
        let env0 = self.env0;
        ranges
            .iter()
            .zip(per_chunk)
            .map(|(r, cols)| ViewMut { layout, env0: env0 + r.start, num_envs: r.len(), cols })
            .collect()
    }
}

/// Sums `a[i]*b[i]` over all columns (inner product of two sets; used by gradient tests).
pub fn dot<T: Real>(a: &Columns<T>, b: &Columns<T>) -> T {
    let mut s = T::zero();
    for ((_, x), (_, y)) in a.columns().zip(b.columns()) {
        for (&u, &v) in x.iter().zip(y) {
            s += u * v;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(vec![ColumnSpec::new("q", 2, 3), ColumnSpec::new("act", 1, 2)])
    }

    #[test]
    fn env_chunks_are_disjoint_and_cover() {
        let mut c: Columns<f32> = Columns::zeros(layout(), 5);
        {
            let chunks = c.chunks_mut(&[0..2, 2..5]);
            for mut ch in chunks {
                let e0 = ch.env0() as f32;
                ch.col_mut("q").fill(e0);
            }
        }
        assert_eq!(c.env("q", 1).unwrap(), &[0.0; 6]);
        assert_eq!(c.env("q", 4).unwrap(), &[2.0; 6]);
    }

    #[test]
    fn set_rejects_wrong_length_naming_column() {
        let mut c: Columns<f32> = Columns::zeros(layout(), 2);
        let err = c.set("act", &[0.0; 3]).unwrap_err();
        assert!(err.to_string().contains("act"), "{err}");
        assert!(matches!(err, EngineError::ShapeMismatch { expected: 4, found: 3, .. }));
    }
}
