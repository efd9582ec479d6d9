/**
 * The cluster: a coordinator (scheduler as a Pekko cluster singleton, REST API) and one worker agent per host that
 * starts, watches and stops the rank processes of its part of each job; Kryo carries every message between them.
 */
package dev.strata.cluster;
