"""Campfire (Gamboa et al. 2020): gradual, regularisation-free structured sparse training inside
kernels (a fixed count of non-zeros per kernel), per filter (a fixed count of whole kernels) and
of whole filters, the masks frozen after a set epoch. See docs/methods/campfire.md."""
