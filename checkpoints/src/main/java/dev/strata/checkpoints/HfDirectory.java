package dev.strata.checkpoints;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.strata.runtime.HostTensor;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face model directory: {@code config.json} plus {@code model.safetensors}, or shards listed in
 * {@code model.safetensors.index.json}. Reading maps every tensor; writing goes to a temporary sibling directory that
 * is renamed into place, so a failed export leaves nothing half-written.
 */
public final class HfDirectory {
    public static final String CONFIG = "config.json", GENERATION = "generation_config.json", SINGLE = "model.safetensors", INDEX = "model.safetensors.index.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path dir;
    private final Map<String, Object> config;
    private final Map<String, HostTensor> tensors;
    private final boolean sharded;

    private HfDirectory(Path dir, Map<String, Object> config, Map<String, HostTensor> tensors, boolean sharded) {
        this.dir = dir;
        this.config = config;
        this.tensors = tensors;
        this.sharded = sharded;
    }

    public static HfDirectory read(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("model directory " + dir + " does not exist");
        Path configFile = dir.resolve(CONFIG);
        if (!Files.isRegularFile(configFile)) throw new IllegalArgumentException("model directory " + dir + " has no " + CONFIG);
        Map<String, Object> config;
        try {
            config = JSON.readValue(configFile.toFile(), new TypeReference<LinkedHashMap<String, Object>>() {});
        } catch (IOException e) {
            throw new IllegalArgumentException(configFile + " is not valid JSON: " + e.getMessage());
        }
        Storage fs = new LocalStorage();
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        Path index = dir.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            Map<String, Object> idx = JSON.readValue(index.toFile(), new TypeReference<LinkedHashMap<String, Object>>() {});
            if (!(idx.get("weight_map") instanceof Map<?, ?> weightMap))
                throw new IllegalArgumentException(index + " has no \"weight_map\" object");
            Map<String, Map<String, HostTensor>> shards = new LinkedHashMap<>();
            for (var e : weightMap.entrySet()) {
                String shard = String.valueOf(e.getValue()), name = String.valueOf(e.getKey());
                Path shardPath = dir.resolve(shard);
                if (!Files.isRegularFile(shardPath))
                    throw new IllegalArgumentException(index + " puts '" + name + "' in " + shard + ", which does not exist");
                var contents = shards.computeIfAbsent(shard, s -> readShard(fs, shardPath));
                HostTensor t = contents.get(name);
                if (t == null) throw new IllegalArgumentException(index + " puts '" + name + "' in " + shard + ", which lacks it");
                tensors.put(name, t);
            }
            return new HfDirectory(dir, config, tensors, true);
        }
        Path single = dir.resolve(SINGLE);
        if (!Files.isRegularFile(single))
            throw new IllegalArgumentException("model directory " + dir + " has neither " + SINGLE + " nor " + INDEX);
        tensors.putAll(Safetensors.read(fs, single.toString()).tensors());
        return new HfDirectory(dir, config, tensors, false);
    }

    private static Map<String, HostTensor> readShard(Storage fs, Path p) {
        try {
            return Safetensors.read(fs, p.toString()).tensors();
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + p + ": " + e.getMessage(), e);
        }
    }

    public Path dir() { return dir; }

    public Map<String, Object> config() { return config; }

    public Map<String, HostTensor> tensors() { return tensors; }

    public boolean sharded() { return sharded; }

    /** The tensor, or an error naming the directory and what is missing. */
    public HostTensor tensor(String name) {
        HostTensor t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("model directory " + dir + " lacks tensor '" + name + "'");
        return t;
    }

    /**
     * Writes config and tensors to {@code dir}, as one file or as shards of at most {@code maxShardBytes} with an
     * index. The directory must not exist; it appears whole or not at all.
     */
    public static void write(Path dir, Map<String, Object> config, Map<String, HostTensor> tensors, long maxShardBytes)
            throws IOException {
        write(dir, config, null, tensors, maxShardBytes);
    }

    /** As above, with a generation_config.json when {@code generation} is not null. */
    public static void write(Path dir, Map<String, Object> config, Map<String, Object> generation, Map<String, HostTensor> tensors,
                             long maxShardBytes) throws IOException {
        if (Files.exists(dir)) throw new IllegalArgumentException("output directory " + dir + " already exists");
        Path parent = dir.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = Files.createTempDirectory(parent, "." + dir.getFileName() + ".tmp-");
        try {
            JSON.writeValue(tmp.resolve(CONFIG).toFile(), config);
            if (generation != null) JSON.writeValue(tmp.resolve(GENERATION).toFile(), generation);
            List<Map<String, HostTensor>> shards = new ArrayList<>(List.of(new LinkedHashMap<>()));
            long current = 0;
            for (var e : tensors.entrySet()) {
                if (current > 0 && current + e.getValue().byteSize() > maxShardBytes) {
                    shards.add(new LinkedHashMap<>());
                    current = 0;
                }
                shards.get(shards.size() - 1).put(e.getKey(), e.getValue());
                current += e.getValue().byteSize();
            }
            if (shards.size() <= 1) {
                writeShard(tmp.resolve(SINGLE), shards.get(0));
            } else {
                Map<String, String> weightMap = new LinkedHashMap<>();
                long total = 0;
                for (int i = 0; i < shards.size(); i++) {
                    String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                    writeShard(tmp.resolve(name), shards.get(i));
                    for (var e : shards.get(i).entrySet()) {
                        weightMap.put(e.getKey(), name);
                        total += e.getValue().byteSize();
                    }
                }
                JSON.writeValue(tmp.resolve(INDEX).toFile(), Map.of("metadata", Map.of("total_size", total), "weight_map", weightMap));
            }
            Files.move(tmp, dir, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            new LocalStorage().delete(tmp.toString());
            throw e;
        }
    }

    private static void writeShard(Path file, Map<String, HostTensor> tensors) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            Safetensors.write(out, tensors, Map.of("format", "pt"));
        }
    }
}
