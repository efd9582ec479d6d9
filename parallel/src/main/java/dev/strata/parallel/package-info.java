/** Device meshes, collectives, tensor/pipeline/data parallelism and the Pekko cluster control plane. Not built yet. */
package dev.strata.parallel;
