package dev.strata.cluster;

import com.fasterxml.jackson.annotation.JsonAutoDetect;
import com.fasterxml.jackson.annotation.JsonIgnore;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.TreeMap;

/**
 * A job and its current attempt, as the coordinator keeps it and {@link JobStore} records it (its fields as JSON;
 * the ignored ones are rebuilt: the curve from its own table, the ranks' liveness from the agents' next reports).
 */
@JsonAutoDetect(fieldVisibility = JsonAutoDetect.Visibility.ANY)
final class ClusterJob {
    String id, source, json, state = "queued", reason = "", waitingFor = "";
    long submittedAt, waitTimeoutMs;
    int attempt = -1, restarts, dp, pp, tp;
    long step, steps, lostAt;
    double loss = Double.NaN, tokensPerSecond, mfu = Double.NaN, etaSeconds = -1;
    boolean live;                          // the attempt's ranks run (or start): they hold their slots
    String[] nodes = new String[0];        // nodes[r]: where rank r of the attempt runs
    int[] ports = new int[0];              // the attempt's rendezvous ports
    Set<Integer> finished = new HashSet<>();
    @JsonIgnore final TreeMap<Long, double[]> curve = new TreeMap<>(); // step -> (loss, tokens/s)
    @JsonIgnore String[] rankStates = new String[0];
    @JsonIgnore long recoveringSince;      // > 0: loaded by a restarted coordinator, its ranks not all reported yet
    @JsonIgnore long recordedStep;         // the last step the store held when a restarted coordinator loaded the job
    @JsonIgnore long resendUntil;          // until then rank 0's node is asked for the steps after recordedStep again

    ClusterJob() {} // for the store

    ClusterJob(String id, String json, String source, long waitTimeoutMs, long now) {
        this.id = id;
        this.json = json;
        this.source = source;
        this.submittedAt = now;
        this.waitTimeoutMs = waitTimeoutMs;
    }

    int ranks() { return dp * pp * tp; }

    boolean ended() { return state.equals("succeeded") || state.equals("failed") || state.equals("cancelled"); }

    /** A new attempt on these nodes: every rank's state unknown until its agent reports it. */
    void startAttempt(String[] placed, int[] ports) {
        attempt++;
        nodes = placed;
        this.ports = ports;
        live = true;
        finished.clear();
        state = "starting";
        waitingFor = "";
        rankStates = new String[placed.length];
        Arrays.fill(rankStates, "starting");
    }

    /** Ranks no agent has reported since this coordinator started (recovery) or since the attempt started. */
    Set<Integer> unheard() {
        Set<Integer> out = new HashSet<>();
        for (int r = 0; r < rankStates.length; r++) if (rankStates[r] == null || rankStates[r].equals("starting") || rankStates[r].equals("unknown")) out.add(r);
        return out;
    }

    Protocol.JobView view() {
        String name = source.substring(source.lastIndexOf('/') + 1);
        return new Protocol.JobView(id, name, state, reason, ranks(), "dp " + dp + " × pp " + pp + " × tp " + tp, nodes.clone(),
                rankStates.clone(), step, steps, loss, tokensPerSecond, mfu, etaSeconds, restarts, waitingFor, submittedAt);
    }
}
