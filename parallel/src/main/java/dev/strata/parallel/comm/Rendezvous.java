package dev.strata.parallel.comm;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Where the threads of an in-process group meet: the n-th collective of every rank is one round, complete when all
 * have contributed, and point-to-point messages queue per (sender, receiver). It is also the group's watchdog: a
 * round not complete within the timeout fails on every waiting rank with the operation, its size, the ranks that
 * did not arrive and each rank's last calls.
 */
final class Rendezvous implements Exchange {
    private static final int HISTORY = 4;

    private final String name;
    private final int size;
    private final long timeoutNanos;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Map<Long, Round> rounds = new HashMap<>();
    private final Map<Long, Deque<double[]>> mail = new HashMap<>();
    private final List<Deque<String>> history = new ArrayList<>();

    private static final class Round {
        final String what;
        final double[][] contributions;
        int arrived, left;
        String failure;

        Round(String what, int size) {
            this.what = what;
            this.contributions = new double[size][];
        }
    }

    Rendezvous(String name, int size, Duration timeout) {
        if (size < 1) throw new IllegalArgumentException("a group needs at least one rank, got " + size);
        this.name = name;
        this.size = size;
        this.timeoutNanos = timeout.toNanos();
        for (int i = 0; i < size; i++) history.add(new ArrayDeque<>());
    }

    @Override public String name() { return name; }

    @Override public int size() { return size; }

    @Override public double[][] meet(long seq, int rank, String what, double[] values) {
        lock.lock();
        try {
            remember(rank, "#" + seq + " " + what);
            Round round = rounds.computeIfAbsent(seq, s -> new Round(what, size));
            if (!round.what.equals(what) && round.failure == null)
                round.failure = name + ": collective #" + seq + " does not match across ranks: rank " + rank + " called " + what
                        + " where another called " + round.what;
            round.contributions[rank] = values;
            round.arrived++;
            changed.signalAll();
            long left = timeoutNanos;
            while (round.arrived < size && round.failure == null && left > 0) left = changed.awaitNanos(left);
            if (round.failure == null && round.arrived < size) round.failure = timeoutMessage(seq, round);
            if (round.failure != null) {
                changed.signalAll();
                throw new CollectiveException(round.failure);
            }
            return round.contributions;
        } catch (InterruptedException e) {
            throw CollectiveException.interrupted(name, rank, what);
        } finally {
            lock.unlock();
        }
    }

    @Override public void leave(long seq) {
        lock.lock();
        try {
            Round round = rounds.get(seq);
            if (round != null && ++round.left == size) rounds.remove(seq);
        } finally {
            lock.unlock();
        }
    }

    @Override public void post(int from, int to, double[] values) {
        lock.lock();
        try {
            remember(from, "send to " + to);
            mail.computeIfAbsent(key(from, to), k -> new ArrayDeque<>()).add(values);
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    @Override public double[] take(int from, int to, long expected, String what) {
        lock.lock();
        try {
            remember(to, what);
            Deque<double[]> box = mail.computeIfAbsent(key(from, to), k -> new ArrayDeque<>());
            long left = timeoutNanos;
            while (box.isEmpty() && left > 0) left = changed.awaitNanos(left);
            if (box.isEmpty()) throw CollectiveException.neverSent(name, to, from, what, seconds(), lastCalls());
            double[] v = box.poll();
            if (v.length != expected) throw CollectiveException.wrongLength(name, to, from, what, expected, v.length);
            return v;
        } catch (InterruptedException e) {
            throw CollectiveException.interrupted(name, to, what);
        } finally {
            lock.unlock();
        }
    }

    private String timeoutMessage(long seq, Round round) {
        List<Integer> missing = new ArrayList<>();
        for (int r = 0; r < size; r++) if (round.contributions[r] == null) missing.add(r);
        return name + ": collective #" + seq + " " + round.what + " timed out after " + seconds() + ": ranks " + missing
                + " of " + size + " did not arrive; last calls: " + lastCalls();
    }

    private String lastCalls() {
        StringBuilder sb = new StringBuilder();
        for (int r = 0; r < size; r++)
            sb.append(r == 0 ? "" : "; ").append("rank ").append(r).append(": ").append(history.get(r).isEmpty() ? "none" : String.join(", ", history.get(r)));
        return sb.toString();
    }

    private void remember(int rank, String call) {
        Deque<String> h = history.get(rank);
        if (h.size() == HISTORY) h.removeFirst();
        h.addLast(call);
    }

    private String seconds() { return String.format(java.util.Locale.ROOT, "%.1f s", TimeUnit.NANOSECONDS.toMillis(timeoutNanos) / 1e3); }

    private long key(int from, int to) { return (long) from * size + to; }

}
