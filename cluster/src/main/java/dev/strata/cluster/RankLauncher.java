package dev.strata.cluster;

import java.nio.file.Path;
import java.util.List;

/** The command line of one rank process (the trainer's worker entry point, given by the CLI that starts the agent). */
@FunctionalInterface
public interface RankLauncher {
    /** jobFile holds the job's JSON; hosts[r] is rank r's host; ports: each group's rendezvous port; resume: from the run's latest checkpoint. */
    List<String> command(Path jobFile, String source, int rank, String[] hosts, int[] ports, boolean resume);
}
