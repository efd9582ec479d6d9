package dev.strata.parallel.comm;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
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
import org.apache.pekko.actor.AbstractActor;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.ActorSelection;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.Props;

/**
 * An {@link Exchange} between processes over Apache Pekko's Artery remoting (TCP). Every rank runs an actor system
 * with one mailbox actor. Rank 0 listens at the address all ranks are given; the others announce their own to it,
 * and it sends everyone the table of addresses: the rendezvous. Values travel as byte arrays (Pekko's own
 * serializer), cut into frames below Artery's 256 KiB; every rank sends its contribution to every other and
 * computes the collective from all of them, so no rank is special after the rendezvous.
 */
final class PekkoExchange implements Exchange {
    private static final byte HELLO = 1, TABLE = 2, DATA = 3;
    private static final int FRAME_DOUBLES = 24 * 1024; // 192 KiB of values a frame
    private static final int HISTORY = 4;
    private static final long JOIN_NANOS = TimeUnit.SECONDS.toNanos(120);

    private final String name, actorName;
    private final int rank, size;
    private final long timeoutNanos;
    private final ActorSystem system;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Map<Key, Assembly> inbox = new HashMap<>();
    private final String[] addresses;
    private final long[] sentTo, takenFrom; // point-to-point message counts per peer
    private final Deque<String> history = new ArrayDeque<>();
    private final String[] lastSeen; // the last call of each peer that reached this rank
    private ActorSelection[] peers;
    private int joined = 1;

    private record Key(long tag, int from) {}

    /** A message being put together from its frames. */
    private static final class Assembly {
        final String what;
        final double[] values;
        int frames, expectedFrames;

        Assembly(String what, int length, int expectedFrames) {
            this.what = what;
            this.values = new double[length];
            this.expectedFrames = expectedFrames;
        }

        boolean complete() { return frames == expectedFrames; }
    }

    PekkoExchange(String name, int rank, int size, String host, int coordinatorPort, Duration timeout) {
        if (size < 1 || rank < 0 || rank >= size) throw new IllegalArgumentException("rank " + rank + " of a group of " + size);
        this.name = name;
        this.actorName = "comm-" + name.replaceAll("[^A-Za-z0-9-]", "_");
        this.rank = rank;
        this.size = size;
        this.timeoutNanos = timeout.toNanos();
        this.addresses = new String[size];
        this.sentTo = new long[size];
        this.takenFrom = new long[size];
        this.lastSeen = new String[size];
        this.system = ActorSystem.create("strata", config(host, rank == 0 ? coordinatorPort : 0));
        system.actorOf(Props.create(Mailbox.class, () -> new Mailbox(this)), actorName);
        addresses[rank] = ((ExtendedActorSystem) system).provider().getDefaultAddress() + "/user/" + actorName;
        try {
            rendezvous(host, coordinatorPort);
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    private static Config config(String host, int port) {
        return ConfigFactory.parseString("""
                pekko {
                  loglevel = "ERROR"
                  stdout-loglevel = "ERROR"
                  log-dead-letters = off
                  log-dead-letters-during-shutdown = off
                  actor.provider = remote
                  actor.allow-java-serialization = off
                  remote.artery.transport = tcp
                  remote.artery.canonical.hostname = "%s"
                  remote.artery.canonical.port = %d
                  coordinated-shutdown.run-by-jvm-shutdown-hook = off
                }
                """.formatted(host, port)).withFallback(ConfigFactory.defaultReference(PekkoExchange.class.getClassLoader()));
    }

    /**
     * Rank 0 collects everyone's address and sends the table; the others announce themselves until it comes. Joining
     * waits at least JOIN_NANOS whatever the collectives' timeout: JVMs on a busy host take seconds to start.
     */
    private void rendezvous(String host, int coordinatorPort) {
        String coordinator = "pekko://strata@" + host + ":" + coordinatorPort + "/user/" + actorName;
        long joinNanos = Math.max(timeoutNanos, JOIN_NANOS), deadline = System.nanoTime() + joinNanos;
        lock.lock();
        try {
            if (rank == 0) {
                while (joined < size && System.nanoTime() < deadline) changed.awaitNanos(deadline - System.nanoTime());
                if (joined < size) {
                    List<Integer> missing = new ArrayList<>();
                    for (int r = 0; r < size; r++) if (addresses[r] == null) missing.add(r);
                    throw new CollectiveException(name + ": ranks " + missing + " of " + size + " did not join at " + host + ":" + coordinatorPort
                            + " within " + joinNanos / 1_000_000_000 + " s");
                }
                peers = selections();
                byte[] table = table();
                for (int r = 1; r < size; r++) peers[r].tell(table, ActorRef.noSender());
            } else {
                ActorSelection first = system.actorSelection(coordinator);
                byte[] hello = hello();
                while (peers == null && System.nanoTime() < deadline) {
                    first.tell(hello, ActorRef.noSender());
                    changed.awaitNanos(Math.min(TimeUnit.MILLISECONDS.toNanos(300), Math.max(1, deadline - System.nanoTime())));
                }
                if (peers == null)
                    throw new CollectiveException(name + ": rank " + rank + " found no coordinator (rank 0) at " + host + ":" + coordinatorPort
                            + " within " + joinNanos / 1_000_000_000 + " s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException(name + ": rank " + rank + " was interrupted while joining");
        } finally {
            lock.unlock();
        }
    }

    private ActorSelection[] selections() {
        ActorSelection[] s = new ActorSelection[size];
        for (int r = 0; r < size; r++) if (r != rank) s[r] = system.actorSelection(addresses[r]);
        return s;
    }

    @Override public String name() { return name; }

    @Override public int size() { return size; }

    @Override public double[][] meet(long seq, int rank, String what, double[] values) {
        remember("#" + seq + " " + what);
        for (int r = 0; r < size; r++) if (r != rank) send(r, seq, what, values);
        double[][] all = new double[size][];
        all[rank] = values;
        lock.lock();
        try {
            long left = timeoutNanos;
            while (left > 0 && !arrived(seq)) left = changed.awaitNanos(left);
            List<Integer> missing = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                if (r == rank) continue;
                Assembly a = inbox.get(new Key(seq, r));
                if (a == null || !a.complete()) missing.add(r);
                else if (!a.what.equals(what))
                    throw new CollectiveException(name + ": collective #" + seq + " does not match across ranks: rank " + rank + " called "
                            + what + " where rank " + r + " called " + a.what);
            }
            if (!missing.isEmpty())
                throw new CollectiveException(name + ": collective #" + seq + " " + what + " timed out after " + seconds() + ": ranks " + missing
                        + " of " + size + " did not arrive; last calls: " + lastCalls());
            for (int r = 0; r < size; r++) if (r != rank) all[r] = inbox.remove(new Key(seq, r)).values;
            return all;
        } catch (InterruptedException e) {
            throw CollectiveException.interrupted(name, rank, what);
        } finally {
            lock.unlock();
        }
    }

    private boolean arrived(long seq) {
        for (int r = 0; r < size; r++) {
            if (r == rank) continue;
            Assembly a = inbox.get(new Key(seq, r));
            if (a == null || !a.complete()) return false;
        }
        return true;
    }

    @Override public void leave(long seq) {}

    @Override public void post(int from, int to, double[] values) {
        long tag;
        lock.lock();
        try {
            tag = -1 - sentTo[to]++;
        } finally {
            lock.unlock();
        }
        remember("send to " + to);
        send(to, tag, "send", values);
    }

    @Override public double[] take(int from, int to, long expected, String what) {
        remember(what);
        lock.lock();
        try {
            Key key = new Key(-1 - takenFrom[from]++, from);
            long left = timeoutNanos;
            while (left > 0 && !(inbox.containsKey(key) && inbox.get(key).complete())) left = changed.awaitNanos(left);
            Assembly a = inbox.remove(key);
            if (a == null || !a.complete()) throw CollectiveException.neverSent(name, to, from, what, seconds(), lastCalls());
            if (a.values.length != expected) throw CollectiveException.wrongLength(name, to, from, what, expected, a.values.length);
            return a.values;
        } catch (InterruptedException e) {
            throw CollectiveException.interrupted(name, to, what);
        } finally {
            lock.unlock();
        }
    }

    @Override public void close(int rank) {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            // a system that does not stop in time is left to the JVM's exit
        }
    }

    // ---- messages -----------------------------------------------------------------------------------------------

    /** DATA: tag, sender, frame index and count, total length, what, then this frame's values. */
    private void send(int to, long tag, String what, double[] values) {
        byte[] whatBytes = what.getBytes(StandardCharsets.UTF_8);
        int frames = Math.max(1, (values.length + FRAME_DOUBLES - 1) / FRAME_DOUBLES);
        for (int f = 0; f < frames; f++) {
            int from = f * FRAME_DOUBLES, n = Math.min(FRAME_DOUBLES, values.length - from);
            ByteBuffer b = ByteBuffer.allocate(1 + 8 + 4 * 5 + whatBytes.length + 8 * n);
            b.put(DATA).putLong(tag).putInt(rank).putInt(f).putInt(frames).putInt(values.length).putInt(whatBytes.length).put(whatBytes);
            for (int i = 0; i < n; i++) b.putDouble(values[from + i]);
            if (to == rank) receive(b.array());
            else peers[to].tell(b.array(), ActorRef.noSender());
        }
    }

    private byte[] hello() {
        byte[] a = addresses[rank].getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(1 + 4 + 4 + a.length).put(HELLO).putInt(rank).putInt(a.length).put(a).array();
    }

    private byte[] table() {
        List<byte[]> parts = new ArrayList<>();
        int bytes = 1 + 4;
        for (String a : addresses) {
            parts.add(a.getBytes(StandardCharsets.UTF_8));
            bytes += 4 + parts.get(parts.size() - 1).length;
        }
        ByteBuffer b = ByteBuffer.allocate(bytes).put(TABLE).putInt(size);
        for (byte[] p : parts) b.putInt(p.length).put(p);
        return b.array();
    }

    /** Runs on the mailbox actor's thread. */
    void receive(byte[] message) {
        ByteBuffer b = ByteBuffer.wrap(message);
        byte kind = b.get();
        lock.lock();
        try {
            switch (kind) {
                case HELLO -> {
                    int from = b.getInt();
                    if (rank == 0 && from > 0 && from < size && addresses[from] == null) {
                        addresses[from] = string(b);
                        joined++;
                    } else if (rank == 0 && peers != null && from > 0 && from < size) {
                        peers[from].tell(table(), ActorRef.noSender()); // its table was lost: send it again
                    }
                }
                case TABLE -> {
                    if (peers == null && b.getInt() == size) {
                        for (int r = 0; r < size; r++) {
                            String a = string(b);
                            if (r != rank) addresses[r] = a;
                        }
                        peers = selections();
                    }
                }
                case DATA -> {
                    long tag = b.getLong();
                    int from = b.getInt(), frame = b.getInt(), frames = b.getInt(), length = b.getInt();
                    String what = string(b);
                    Assembly a = inbox.computeIfAbsent(new Key(tag, from), k -> new Assembly(what, length, frames));
                    lastSeen[from] = (tag >= 0 ? "#" + tag + " " : "") + what;
                    int at = frame * FRAME_DOUBLES;
                    while (b.hasRemaining()) a.values[at++] = b.getDouble();
                    a.frames++;
                }
                default -> { }
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private static String string(ByteBuffer b) {
        byte[] s = new byte[b.getInt()];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /** This rank's last calls, and the last call each peer was seen making (what its messages said). */
    private String lastCalls() {
        StringBuilder sb = new StringBuilder("rank " + rank + ": ");
        synchronized (history) {
            sb.append(String.join(", ", history));
        }
        for (int r = 0; r < size; r++) if (r != rank) sb.append("; rank ").append(r).append(": ").append(lastSeen[r] == null ? "none seen" : lastSeen[r]);
        return sb.toString();
    }

    private void remember(String call) {
        synchronized (history) {
            if (history.size() == HISTORY) history.removeFirst();
            history.addLast(call);
        }
    }

    private String seconds() { return String.format(java.util.Locale.ROOT, "%.1f s", TimeUnit.NANOSECONDS.toMillis(timeoutNanos) / 1e3); }


    /** The one actor of a rank: hands every byte array it gets to the exchange. */
    static final class Mailbox extends AbstractActor {
        private final PekkoExchange exchange;

        Mailbox(PekkoExchange exchange) { this.exchange = exchange; }

        @Override public Receive createReceive() { return receiveBuilder().match(byte[].class, exchange::receive).build(); }
    }
}
