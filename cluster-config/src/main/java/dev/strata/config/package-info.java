/**
 * Typed job specifications read from HOCON job files, with defaults in {@code reference.conf}, model presets, and
 * validation whose messages name the file, the key and what was expected.
 */
package dev.strata.config;
