package dev.strata.checkpoints;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
 * dtype, shape and byte range, then the raw little-endian data. Reading validates every range against the file.
 */
public final class Safetensors {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    private Safetensors() {}

    /** The tensors of one file, in header order, and its free-form string metadata. */
    public record Contents(Map<String, HostTensor> tensors, Map<String, String> metadata) {}

    /** Reads a file's header and maps (or reads) each tensor's bytes; {@code path} names it in errors. */
    public static Contents read(Storage storage, String path) throws IOException {
        long size = storage.size(path);
        if (size < 8) throw bad(path, "is " + size + " bytes long, shorter than the 8-byte header length");
        long headerLen = storage.read(path, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size)
            throw bad(path, "declares a header of " + headerLen + " bytes but the file has " + size + " bytes");
        ByteBuffer headerBytes = storage.read(path, 8, (int) headerLen);
        byte[] raw = new byte[(int) headerLen];
        headerBytes.get(raw);
        Map<String, Object> header;
        try {
            header = JSON.readValue(raw, new TypeReference<LinkedHashMap<String, Object>>() {});
        } catch (IOException e) {
            throw bad(path, "has a header that is not valid JSON: " + e.getMessage());
        }
        String file = path;
        long dataStart = 8 + headerLen, dataLen = size - dataStart;
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (var e : header.entrySet()) {
            String name = e.getKey();
            if (name.equals("__metadata__")) {
                if (e.getValue() instanceof Map<?, ?> m) m.forEach((k, v) -> metadata.put(String.valueOf(k), String.valueOf(v)));
                continue;
            }
            if (!(e.getValue() instanceof Map<?, ?> info)) throw bad(file, "tensor '" + name + "' has no {dtype, shape, data_offsets} entry");
            DType dtype;
            try {
                dtype = DType.fromSafetensorsName(String.valueOf(info.get("dtype")));
            } catch (IllegalArgumentException ex) {
                throw bad(file, "tensor '" + name + "': " + ex.getMessage());
            }
            if (!(info.get("shape") instanceof List<?> shapeList) || !(info.get("data_offsets") instanceof List<?> offs) || offs.size() != 2)
                throw bad(file, "tensor '" + name + "' lacks a shape or a [begin, end] data_offsets");
            if (!shapeList.stream().allMatch(o -> o instanceof Integer n && n >= 0) || !offs.stream().allMatch(o -> o instanceof Number n && n.longValue() >= 0
                    && !(o instanceof Double) && !(o instanceof Float)))
                throw bad(file, "tensor '" + name + "' has shape " + shapeList + " and data_offsets " + offs + "; expected lists of non-negative integers");
            int[] shape = shapeList.stream().mapToInt(o -> (Integer) o).toArray();
            long begin = ((Number) offs.get(0)).longValue(), end = ((Number) offs.get(1)).longValue();
            long expected = dtype.byteSize();
            for (int s : shape) expected *= s;
            if (begin < 0 || end < begin || end > dataLen)
                throw bad(file, "tensor '" + name + "' spans bytes [" + begin + ", " + end + ") but the data section has "
                        + dataLen + " bytes (truncated file?)");
            if (end - begin != expected)
                throw bad(file, "tensor '" + name + "' has " + (end - begin) + " bytes but " + dtype.safetensorsName()
                        + java.util.Arrays.toString(shape) + " needs " + expected);
            tensors.put(name, new HostTensor(dtype, shape, storage.read(path, dataStart + begin, (int) (end - begin))));
        }
        return new Contents(tensors, metadata);
    }

    /** Writes tensors in iteration order, with the header padded to 8 bytes as the format recommends. */
    public static void write(OutputStream out, Map<String, HostTensor> tensors, Map<String, String> metadata) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) header.put("__metadata__", metadata);
        long offset = 0;
        for (var e : tensors.entrySet()) {
            HostTensor t = e.getValue();
            long len = t.byteSize();
            header.put(e.getKey(), Map.of("dtype", t.dtype().safetensorsName(), "shape", t.shape(),
                    "data_offsets", List.of(offset, offset + len)));
            offset += len;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        WritableByteChannel ch = Channels.newChannel(out);
        ch.write(head.flip());
        for (HostTensor t : tensors.values()) {
            ByteBuffer data = t.data().duplicate();
            while (data.hasRemaining()) ch.write(data);
        }
        out.flush();
    }

    private static IllegalArgumentException bad(String file, String what) {
        return new IllegalArgumentException("safetensors file " + file + " " + what);
    }
}
