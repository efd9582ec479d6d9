/** Runnable example programs; the example job files live in examples/ beside this module. */
package dev.strata.examples;
