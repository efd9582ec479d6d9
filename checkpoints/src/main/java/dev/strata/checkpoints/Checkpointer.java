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
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Training checkpoints of one run: {@code run-dir/checkpoints/step-NNNNNNNN/} holding model.safetensors,
 * optimizer.safetensors and manifest.json. A save writes everything into a temporary directory, renames it into
 * place, then moves the {@code latest} pointer; a crash at any point leaves the previous checkpoint and pointer
 * intact. Loading checks every tensor's SHA-256 and refuses a checkpoint that fails.
 */
public final class Checkpointer {
    public static final String MODEL = "model.safetensors", OPTIMIZER = "optimizer.safetensors", MANIFEST = "manifest.json";
    public static final String LATEST = "latest";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Storage fs;
    private final String dir;
    private final int keepLast;

    public Checkpointer(Storage fs, String runDir, int keepLast) {
        this.fs = fs;
        this.dir = fs.resolve(runDir, "checkpoints");
        this.keepLast = keepLast;
    }

    /** A checkpoint read back: its directory, manifest, and the model and optimizer tensors. */
    public record Checkpoint(String dir, Manifest manifest, Map<String, HostTensor> model, Map<String, HostTensor> optimizer) {}

    /** State besides tensors that goes into the manifest. */
    public record State(Map<String, Object> config, Map<String, Object> data, Map<String, Object> rng,
                        Map<String, Object> schedule, Map<String, Object> metrics) {}

    public static String stepDirName(long step) { return String.format("step-%08d", step); }

    /** Writes and commits a checkpoint; returns its directory. */
    public String save(long step, Map<String, HostTensor> model, Map<String, HostTensor> optimizer, State state) throws IOException {
        // A checkpoint of poisoned weights would push a good one out through keep_last.
        for (var e : model.entrySet()) {
            long bad = e.getValue().nonFiniteCount();
            if (bad > 0) throw new IllegalStateException("not writing the checkpoint of step " + step + ": tensor '" + e.getKey() + "' holds "
                    + bad + " non-finite values; the checkpoints in " + dir + " are kept as they are");
        }
        fs.mkdirs(dir);
        removeStaleTemporaries();
        String name = stepDirName(step), target = fs.resolve(dir, name);
        String tmp = fs.resolve(dir, name + ".tmp-" + UUID.randomUUID().toString().substring(0, 8));
        try {
            List<Manifest.TensorEntry> entries = new ArrayList<>();
            writeTensors(fs.resolve(tmp, MODEL), MODEL, model, entries);
            writeTensors(fs.resolve(tmp, OPTIMIZER), OPTIMIZER, optimizer, entries);
            Manifest m = new Manifest(Manifest.FORMAT, UNSIGNED, step, Instant.now().toString(), state.config(), state.data(),
                    state.rng(), state.schedule(), state.metrics(), entries);
            try (OutputStream out = fs.create(fs.resolve(tmp, MANIFEST))) {
                out.write(signed(JSON.writeValueAsString(m)).getBytes(StandardCharsets.UTF_8));
            }
            if (fs.exists(target)) {
                // Re-saving a step (after a resume): the old copy goes only once the new one is complete.
                String old = target + ".old-" + UUID.randomUUID().toString().substring(0, 8);
                fs.rename(target, old);
                fs.rename(tmp, target);
                fs.delete(old);
            } else {
                fs.rename(tmp, target);
            }
        } catch (IOException | RuntimeException e) {
            fs.delete(tmp);
            throw e;
        }
        String pointerTmp = fs.resolve(dir, LATEST + ".tmp");
        try (OutputStream out = fs.create(pointerTmp)) {
            out.write((name + "\n").getBytes(StandardCharsets.UTF_8));
        }
        fs.replace(pointerTmp, fs.resolve(dir, LATEST));
        prune(name);
        return target;
    }

    private void writeTensors(String path, String file, Map<String, HostTensor> tensors, List<Manifest.TensorEntry> entries)
            throws IOException {
        for (var e : tensors.entrySet())
            entries.add(new Manifest.TensorEntry(e.getKey(), file, e.getValue().dtype().safetensorsName(), e.getValue().shape(),
                    sha256(e.getValue().data())));
        try (OutputStream out = fs.create(path)) {
            Safetensors.write(out, tensors, Map.of("format", "pt", "producer", "strata"));
        }
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

    /** Reads a checkpoint directory, verifying every tensor's checksum. */
    public static Checkpoint load(Storage fs, String checkpointDir) throws IOException {
        Manifest m = readManifest(fs, checkpointDir);
        Map<String, Map<String, HostTensor>> files = new LinkedHashMap<>();
        for (String file : new String[] {MODEL, OPTIMIZER}) {
            String path = fs.resolve(checkpointDir, file);
            if (!fs.exists(path)) throw new IllegalArgumentException("checkpoint " + checkpointDir + " lacks " + file);
            files.put(file, Safetensors.read(fs, path).tensors());
        }
        Map<String, HostTensor> model = new LinkedHashMap<>(), optimizer = new LinkedHashMap<>();
        for (Manifest.TensorEntry t : m.tensors()) {
            Map<String, HostTensor> inFile = files.get(t.file());
            String path = fs.resolve(checkpointDir, t.file());
            if (inFile == null) throw new IllegalArgumentException("checkpoint " + checkpointDir + ": manifest names unknown file " + t.file());
            HostTensor h = inFile.get(t.name());
            if (h == null) throw new IllegalArgumentException(path + " lacks tensor '" + t.name() + "' listed in the manifest");
            if (!h.dtype().safetensorsName().equals(t.dtype()) || !java.util.Arrays.equals(h.shape(), t.shape()))
                throw new IllegalArgumentException(path + ": tensor '" + t.name() + "' is " + h.dtype().safetensorsName()
                        + java.util.Arrays.toString(h.shape()) + ", the manifest says " + t.dtype() + java.util.Arrays.toString(t.shape()));
            String actual = sha256(h.data());
            if (!actual.equals(t.sha256()))
                throw new IllegalArgumentException(path + ": tensor '" + t.name() + "' fails its SHA-256 check (manifest "
                        + t.sha256().substring(0, 12) + "…, file " + actual.substring(0, 12) + "…): the file is corrupt, refusing to load it");
            (t.file().equals(MODEL) ? model : optimizer).put(t.name(), h);
        }
        for (var e : files.entrySet())
            for (String name : e.getValue().keySet())
                if (!(e.getKey().equals(MODEL) ? model : optimizer).containsKey(name))
                    throw new IllegalArgumentException(fs.resolve(checkpointDir, e.getKey()) + " holds tensor '" + name
                            + "' that the manifest does not list");
        return new Checkpoint(checkpointDir, m, model, optimizer);
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
                    + (m.format() == 1 ? " (written before manifests carried their own checksum)" : ""));
        Matcher field = CHECKSUM_FIELD.matcher(text);
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
    private static final Pattern CHECKSUM_FIELD = Pattern.compile("\"manifestSha256\"\\s*:\\s*\"([0-9a-f]{64})\"");

    /** The manifest's JSON with its checksum field filled in (the SHA-256 of the text with the field as zeros). */
    private static String signed(String unsigned) {
        String placeholder = "\"" + UNSIGNED + "\"";
        int at = unsigned.indexOf(placeholder);
        String sha = sha256(ByteBuffer.wrap(unsigned.getBytes(StandardCharsets.UTF_8)));
        return unsigned.substring(0, at + 1) + sha + unsigned.substring(at + 1 + UNSIGNED.length());
    }

    private void removeStaleTemporaries() throws IOException {
        for (String n : fs.list(dir)) if (n.contains(".tmp-") || n.contains(".old-")) fs.delete(fs.resolve(dir, n));
    }

    private void prune(String keep) throws IOException {
        List<String> steps = new ArrayList<>(fs.list(dir).stream().filter(n -> n.matches("step-\\d{8}")).sorted().toList());
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
