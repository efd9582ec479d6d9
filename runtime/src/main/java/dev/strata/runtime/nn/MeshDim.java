package dev.strata.runtime.nn;

/** The dimensions ranks are laid out along: data-parallel replicas, pipeline stages, tensor-parallel slices. */
public enum MeshDim { DP, PP, TP }
