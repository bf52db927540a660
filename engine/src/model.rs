//! `Model`: the constant part of a scene, packed from hecs components into `[env][entity]` columns.
//!
//! Real parameters (masses, stiffnesses, rest lengths, gravity) are kept in f64 so every scalar
//! type a system runs in (f32, f64, dual) converts from the exact same numbers; integer topology
//! (spring endpoints, tetrahedron vertices) is kept in u32. Model is never differentiated here.

use crate::columns::{Columns, Layout};
use crate::system::ModelView;

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub params: Columns<f64>,
    pub topology: Columns<u32>,
}

impl Model {
    pub fn empty(num_envs: usize) -> Self {
        Self {
            params: Columns::zeros(Layout::default(), num_envs),
            topology: Columns::zeros(Layout::default(), num_envs),
        }
    }
    pub fn num_envs(&self) -> usize {
        self.params.num_envs()
    }
    pub fn view(&self, envs: std::ops::Range<usize>) -> ModelView<'_> {
        ModelView { params: self.params.view(envs.clone()), topology: self.topology.view(envs) }
    }
    pub fn view_all(&self) -> ModelView<'_> {
        self.view(0..self.num_envs())
    }
}
