/**
 * Tensors, dtypes, devices and the {@link dev.strata.runtime.Backend} op set that every model layer is written
 * against. Implementations live in sub-packages: {@code cpu} (reference, ND4J GEMMs) and later {@code cuda}.
 */
package dev.strata.runtime;
