package dev.strata.cluster;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/**
 * The coordinator's records in a database, so a restarted coordinator finds its jobs again: each job as its JSON,
 * its progress a row a step, and the nodes' cluster addresses (the seed nodes it rejoins its workers through).
 * Plain JDBC and SQL that H2 (the default, a file beside the coordinator) and PostgreSQL both take.
 * A write that fails is logged, not thrown: the scheduler keeps running on what it holds.
 */
public final class JobStore implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    private final Connection db;
    private final String url;

    private JobStore(Connection db, String url) {
        this.db = db;
        this.url = url;
    }

    /** A store that keeps nothing, for a cluster whose coordinator lives as long as its one job (strata train's). */
    public static JobStore none() { return new JobStore(null, "no job database"); }

    /** Opens (and on first use creates) the store at a JDBC URL; one line naming the URL where it cannot. */
    public static JobStore open(String url, String user, String password) {
        try {
            Connection db = DriverManager.getConnection(url, user, password);
            try (Statement s = db.createStatement()) {
                s.execute("CREATE TABLE IF NOT EXISTS strata_jobs (id VARCHAR(64) PRIMARY KEY, record VARCHAR(1000000) NOT NULL)");
                s.execute("CREATE TABLE IF NOT EXISTS strata_progress (job VARCHAR(64) NOT NULL, step BIGINT NOT NULL, loss DOUBLE PRECISION NOT NULL, "
                        + "tokens_per_s DOUBLE PRECISION NOT NULL, PRIMARY KEY (job, step))");
                s.execute("CREATE TABLE IF NOT EXISTS strata_nodes (name VARCHAR(256) PRIMARY KEY, address VARCHAR(1024) NOT NULL)");
            }
            return new JobStore(db, url);
        } catch (SQLException e) {
            throw new IllegalArgumentException("--db " + url + ": cannot open the coordinator's job database (" + firstLine(e) + ")");
        }
    }

    private static String firstLine(Exception e) {
        String m = String.valueOf(e.getMessage());
        return m.contains("\n") ? m.substring(0, m.indexOf('\n')) : m;
    }

    /** Every job recorded, in submission order, each with its curve. */
    List<ClusterJob> jobs() {
        List<ClusterJob> out = new ArrayList<>();
        if (db == null) return out;
        try (Statement s = db.createStatement(); ResultSet r = s.executeQuery("SELECT record FROM strata_jobs")) {
            while (r.next()) out.add(JSON.readValue(r.getString(1), ClusterJob.class));
        } catch (SQLException | java.io.IOException e) {
            throw new IllegalStateException(url + ": cannot read the recorded jobs (" + firstLine(e) + ")", e);
        }
        out.sort(java.util.Comparator.comparing((ClusterJob j) -> j.submittedAt).thenComparing(j -> j.id));
        try (PreparedStatement q = db.prepareStatement("SELECT step, loss, tokens_per_s FROM strata_progress WHERE job = ?")) {
            for (ClusterJob j : out) {
                q.setString(1, j.id);
                try (ResultSet r = q.executeQuery()) {
                    while (r.next()) j.curve.put(r.getLong(1), new double[] {r.getDouble(2), r.getDouble(3)});
                }
            }
        } catch (SQLException e) {
            throw new IllegalStateException(url + ": cannot read the jobs' progress (" + firstLine(e) + ")", e);
        }
        return out;
    }

    void save(ClusterJob job) {
        if (db == null) return;
        try {
            String record = JSON.writeValueAsString(job);
            try (PreparedStatement u = db.prepareStatement("UPDATE strata_jobs SET record = ? WHERE id = ?")) {
                u.setString(1, record);
                u.setString(2, job.id);
                if (u.executeUpdate() > 0) return;
            }
            try (PreparedStatement i = db.prepareStatement("INSERT INTO strata_jobs (id, record) VALUES (?, ?)")) {
                i.setString(1, job.id);
                i.setString(2, record);
                i.executeUpdate();
            }
        } catch (SQLException | java.io.IOException e) {
            Log.info("%s: cannot record job %s (%s)", url, job.id, firstLine(e));
        }
    }

    /** A step's progress; the steps from it on that an earlier attempt recorded are replaced (a restart repeats them). */
    void progress(String job, long step, double loss, double tokensPerSecond) {
        if (db == null) return;
        try (PreparedStatement d = db.prepareStatement("DELETE FROM strata_progress WHERE job = ? AND step >= ?");
             PreparedStatement i = db.prepareStatement("INSERT INTO strata_progress (job, step, loss, tokens_per_s) VALUES (?, ?, ?, ?)")) {
            d.setString(1, job);
            d.setLong(2, step);
            d.executeUpdate();
            i.setString(1, job);
            i.setLong(2, step);
            i.setDouble(3, loss);
            i.setDouble(4, tokensPerSecond);
            i.executeUpdate();
        } catch (SQLException e) {
            Log.info("%s: cannot record step %d of %s (%s)", url, step, job, firstLine(e));
        }
    }

    /** A node's cluster address (pekko://…@host:port), or none when address is null (the node left). */
    void node(String name, String address) {
        if (db == null) return;
        try (PreparedStatement d = db.prepareStatement("DELETE FROM strata_nodes WHERE name = ?")) {
            d.setString(1, name);
            d.executeUpdate();
            if (address == null) return;
            try (PreparedStatement i = db.prepareStatement("INSERT INTO strata_nodes (name, address) VALUES (?, ?)")) {
                i.setString(1, name);
                i.setString(2, address);
                i.executeUpdate();
            }
        } catch (SQLException e) {
            Log.info("%s: cannot record node %s (%s)", url, name, firstLine(e));
        }
    }

    /** The addresses of the nodes that were members when this store last heard. */
    public List<String> nodeAddresses() {
        List<String> out = new ArrayList<>();
        if (db == null) return out;
        try (Statement s = db.createStatement(); ResultSet r = s.executeQuery("SELECT address FROM strata_nodes ORDER BY name")) {
            while (r.next()) out.add(r.getString(1));
        } catch (SQLException e) {
            throw new IllegalStateException(url + ": cannot read the recorded nodes (" + firstLine(e) + ")", e);
        }
        return out;
    }

    @Override public void close() {
        if (db == null) return;
        try {
            db.close();
        } catch (SQLException e) {
            Log.info("%s: %s", url, firstLine(e));
        }
    }
}
