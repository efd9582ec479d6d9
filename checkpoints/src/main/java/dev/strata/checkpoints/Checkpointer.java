package dev.strata.checkpoints;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.strata.runtime.HostTensor;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * Training checkpoints of one run: {@code checkpoints/step-NNNNNNNN/} holding each writing rank's shards
 * (model-RRRRR.safetensors, optimizer-RRRRR.safetensors) and manifest.json. Every rank writes the slices it holds
 * into {@code step-NNNNNNNN.partial/}, then a list of them; rank 0 waits for every list, writes the manifest, and
 * commits by renaming the directory into place and moving the {@code latest} pointer. A crash at any point leaves
 * the previous checkpoint and pointer intact, and a directory without a manifest is never read.
 */
public final class Checkpointer {
    public static final String MANIFEST = "manifest.json", LATEST = "latest";
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final String PARTIAL = ".partial";

    private final Storage fs;
    private final String dir;
    private final int keepLast, keepEvery;

    /** The checkpoints in dir, keeping the last keepLast and, past those, every step that is a multiple of keepEvery (0: none). */
    public Checkpointer(Storage fs, String dir, int keepLast, int keepEvery) {
        if (keepLast < 1) throw new IllegalArgumentException("checkpoint.keep_last must be 1 or more, got " + keepLast);
        this.fs = fs;
        this.dir = dir;
        this.keepLast = keepLast;
        this.keepEvery = keepEvery;
    }

    /** The checkpoints of the run in runDir (its checkpoints/ directory), keeping the last keepLast. */
    public static Checkpointer ofRun(Storage fs, String runDir, int keepLast) { return new Checkpointer(fs, fs.resolve(runDir, "checkpoints"), keepLast, 0); }

    public String dir() { return dir; }

    /** A checkpoint read back whole: its directory, manifest, and the model and optimizer tensors. */
    public record Checkpoint(String dir, Manifest manifest, Map<String, HostTensor> model, Map<String, HostTensor> optimizer) {}

    /** State besides tensors that goes into the manifest. */
    public record State(Map<String, Object> layout, Map<String, Object> config, Map<String, Object> data, Map<String, Object> rng,
                        Map<String, Object> schedule, Map<String, Object> metrics) {
        public State(Map<String, Object> config, Map<String, Object> data, Map<String, Object> rng, Map<String, Object> schedule,
                     Map<String, Object> metrics) {
            this(Map.of("tp", 1, "pp", 1, "dp", 1, "zero", 0, "ranks", 1), config, data, rng, schedule, metrics);
        }
    }

    /**
     * What one rank writes of a tensor: data is the part [start, start + length) along dim of the whole tensor of
     * globalShape (dim -1: all of it).
     */
    public record Piece(String name, Manifest.Group group, int[] globalShape, int dim, int start, HostTensor data) {
        public static Piece whole(String name, Manifest.Group group, HostTensor data) { return new Piece(name, group, data.shape(), -1, 0, data); }
    }

    /** "512 bytes", "3.2 MB", "14.81 GB". */
    public static String size(long bytes) {
        if (bytes < 1_000_000) return bytes + " bytes";
        return bytes < 1_000_000_000 ? String.format(java.util.Locale.ROOT, "%.1f MB", bytes / 1e6) : String.format(java.util.Locale.ROOT, "%.2f GB", bytes / 1e9);
    }

    public static String stepDirName(long step) { return String.format("step-%08d", step); }

    /** Writes and commits a checkpoint of whole tensors from one process; returns its directory. */
    public String save(long step, Map<String, HostTensor> model, Map<String, HostTensor> optimizer, State state) throws IOException {
        removeUncommitted();
        List<Piece> pieces = new ArrayList<>();
        model.forEach((k, v) -> pieces.add(Piece.whole(k, Manifest.Group.MODEL, v)));
        optimizer.forEach((k, v) -> pieces.add(Piece.whole(k, Manifest.Group.OPTIMIZER, v)));
        return save(step, 0, 1, pieces, state, Duration.ZERO);
    }

    /**
     * This rank's part of a checkpoint of ranks ranks: its pieces into the step's partial directory. Rank 0 (whose
     * state goes into the manifest; null on the others) then waits up to wait for every rank's list and commits;
     * it returns the committed directory, the others null.
     */
    public String save(long step, int rank, int ranks, List<Piece> pieces, State state, Duration wait) throws IOException {
        for (Piece p : pieces) {
            long bad = p.group() == Manifest.Group.MODEL ? p.data().nonFiniteCount() : 0;
            // A checkpoint of poisoned weights would push a good one out through keep_last.
            if (bad > 0) throw new IllegalStateException("not writing the checkpoint of step " + step + ": tensor '" + p.name() + "' holds "
                    + bad + " non-finite values; the checkpoints in " + dir + " are kept as they are");
        }
        String name = stepDirName(step), partial = fs.resolve(dir, name + PARTIAL);
        fs.mkdirs(partial);
        long needed = pieces.stream().mapToLong(p -> p.data().byteSize()).sum(), free = fs.freeBytes(partial);
        if (needed > free)
            throw new IllegalStateException("not writing the checkpoint of step " + step + ": rank " + rank + "'s shards need " + size(needed) + " but "
                    + dir + " has " + size(free) + " free; free some space or lower checkpoint.keep_last (the checkpoints there are kept)");
        ShardFiles.write(fs, partial, rank, pieces);
        if (rank != 0) return null;
        List<Manifest.TensorEntry> entries = ShardFiles.collect(fs, partial, ranks, wait, "the checkpoint of step " + step);
        Manifest m = new Manifest(Manifest.FORMAT, UNSIGNED, step, Instant.now().toString(), state.layout(), state.config(), state.data(),
                state.rng(), state.schedule(), state.metrics(), entries);
        try (OutputStream out = fs.create(fs.resolve(partial, MANIFEST))) {
            out.write(signed(JSON.writeValueAsString(m)).getBytes(StandardCharsets.UTF_8));
        }
        String target = commit(partial, name);
        prune(name);
        return target;
    }

    /** The manifest is in: the partial directory becomes the step's, then latest points to it. */
    private String commit(String partial, String name) throws IOException {
        String target = fs.resolve(dir, name);
        if (fs.exists(target)) {
            // Re-saving a step (after a resume): the old copy goes only once the new one is complete.
            String old = target + ".old-" + UUID.randomUUID().toString().substring(0, 8);
            fs.rename(target, old);
            fs.rename(partial, target);
            fs.delete(old);
        } else {
            fs.rename(partial, target);
        }
        String pointerTmp = fs.resolve(dir, LATEST + ".tmp");
        try (OutputStream out = fs.create(pointerTmp)) {
            out.write((name + "\n").getBytes(StandardCharsets.UTF_8));
        }
        fs.replace(pointerTmp, fs.resolve(dir, LATEST));
        return target;
    }

    /** The directory {@code latest} points to, if any checkpoint was committed. */
    public Optional<String> latest() throws IOException {
        String pointer = fs.resolve(dir, LATEST);
        if (!fs.exists(pointer)) return Optional.empty();
        ByteBuffer b = fs.read(pointer, 0, (int) fs.size(pointer));
        byte[] raw = new byte[b.remaining()];
        b.get(raw);
        String name = new String(raw, StandardCharsets.UTF_8).trim();
        if (!name.matches("step-\\d{8}")) throw new IllegalArgumentException(pointer + " holds '" + name + "', expected step-NNNNNNNN");
        String target = fs.resolve(dir, name);
        if (!fs.exists(target)) throw new IllegalArgumentException(pointer + " points to " + target + ", which does not exist");
        return Optional.of(target);
    }

    public List<String> list() throws IOException {
        return fs.list(dir).stream().filter(n -> n.matches("step-\\d{8}")).map(n -> fs.resolve(dir, n)).toList();
    }

    /**
     * Removes what saves that never committed left (partial directories, a re-saved step's old copy). Only while no
     * save runs: the writer calls it once before training.
     */
    public void removeUncommitted() throws IOException {
        for (String n : fs.list(dir)) if (n.endsWith(PARTIAL) || n.contains(".old-") || n.contains(".tmp")) fs.delete(fs.resolve(dir, n));
    }

    /** Reads a checkpoint directory whole, verifying every shard's checksum. */
    public static Checkpoint load(Storage fs, String checkpointDir) throws IOException {
        CheckpointReader r = CheckpointReader.open(fs, checkpointDir);
        Map<String, HostTensor> model = new LinkedHashMap<>(), optimizer = new LinkedHashMap<>();
        for (Manifest.TensorEntry t : r.manifest().tensors()) (t.group() == Manifest.Group.MODEL ? model : optimizer).put(t.name(), r.region(t, -1, 0, 0));
        r.checkFilesHoldOnlyListed();
        return new Checkpoint(checkpointDir, r.manifest(), model, optimizer);
    }

    /** Reads and checks a manifest: its own checksum, its format, and that its step is the one its directory names. */
    public static Manifest readManifest(Storage fs, String checkpointDir) throws IOException {
        String path = fs.resolve(checkpointDir, MANIFEST);
        if (!fs.exists(path)) throw new IllegalArgumentException("checkpoint " + checkpointDir + " has no " + MANIFEST
                + " (not a checkpoint, or a save that never finished)");
        ByteBuffer b = fs.read(path, 0, (int) fs.size(path));
        byte[] raw = new byte[b.remaining()];
        b.get(raw);
        String text = new String(raw, StandardCharsets.UTF_8);
        Manifest m;
        try {
            m = JSON.readValue(raw, Manifest.class);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new IllegalArgumentException(path + " is not a valid manifest: " + e.getOriginalMessage());
        }
        if (m.format() != Manifest.FORMAT)
            throw new IllegalArgumentException(path + " has format " + m.format() + ", expected " + Manifest.FORMAT
                    + (m.format() < 3 ? " (written before checkpoints were sharded by rank; load it with the Strata that wrote it and export it with strata ckpt export-hf)" : ""));
        java.util.regex.Matcher field = CHECKSUM_FIELD.matcher(text);
        if (!field.find()) throw new IllegalArgumentException(path + " has no \"manifestSha256\" field: it was edited or is corrupt, refusing it");
        String actual = sha256(ByteBuffer.wrap((text.substring(0, field.start(1)) + UNSIGNED + text.substring(field.end(1)))
                .getBytes(StandardCharsets.UTF_8)));
        if (!actual.equals(field.group(1)))
            throw new IllegalArgumentException(path + " fails its own SHA-256 check (recorded " + field.group(1).substring(0, 12)
                    + "…, contents " + actual.substring(0, 12) + "…): it was edited or is corrupt, refusing it");
        if (m.tensors() == null) throw new IllegalArgumentException(path + " lists no tensors");
        String name = checkpointDir.substring(checkpointDir.lastIndexOf('/') + 1);
        if (name.matches("step-\\d{8}") && !name.equals(stepDirName(m.step())))
            throw new IllegalArgumentException(path + " records step " + m.step() + " but its directory is " + name);
        return m;
    }

    private static final String UNSIGNED = "0".repeat(64);
    private static final java.util.regex.Pattern CHECKSUM_FIELD = java.util.regex.Pattern.compile("\"manifestSha256\"\\s*:\\s*\"([0-9a-f]{64})\"");

    /** The manifest's JSON with its checksum field filled in (the SHA-256 of the text with the field as zeros). */
    private static String signed(String unsigned) {
        String placeholder = "\"" + UNSIGNED + "\"";
        int at = unsigned.indexOf(placeholder);
        String sha = sha256(ByteBuffer.wrap(unsigned.getBytes(StandardCharsets.UTF_8)));
        return unsigned.substring(0, at + 1) + sha + unsigned.substring(at + 1 + UNSIGNED.length());
    }

    /**
     * After a commit: the oldest checkpoints beyond keep_last go, except milestones (steps that are multiples of
     * keep_every), and never the one just committed.
     */
    private void prune(String keep) throws IOException {
        List<String> steps = new ArrayList<>(fs.list(dir).stream().filter(n -> n.matches("step-\\d{8}"))
                .filter(n -> keepEvery <= 0 || Long.parseLong(n.substring(5)) % keepEvery != 0 || n.equals(keep)).sorted().toList());
        int excess = steps.size() - keepLast;
        for (int i = 0; i < steps.size() && excess > 0; i++) {
            if (steps.get(i).equals(keep)) continue;
            fs.delete(fs.resolve(dir, steps.get(i)));
            excess--;
        }
    }

    static String sha256(ByteBuffer data) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(data.duplicate());
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
