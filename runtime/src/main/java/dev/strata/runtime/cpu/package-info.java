/**
 * The CPU backend: the reference implementation of every {@link dev.strata.runtime.Backend} op, F32 and F64, with
 * GEMMs on ND4J (OpenBLAS) and the rest as plain Java loops parallel over rows.
 */
package dev.strata.runtime.cpu;
