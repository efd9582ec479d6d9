package dev.strata.trainer.data;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * One file of tokens, memory-mapped. Layout (little-endian): a 32-byte header — magic "STRATOK1", version (u32),
 * token width in bytes (u32: 2 or 4), token count (u64), reserved (u64) — then the tokens as uint16 or uint32.
 */
public final class TokenShard {
    static final long MAGIC = 0x314B4F5441525453L; // "STRATOK1" read as a little-endian u64
    static final int VERSION = 1, HEADER_BYTES = 32;

    private final Path path;
    private final ByteBuffer tokens;
    private final int width;
    private final long count;

    private TokenShard(Path path, ByteBuffer tokens, int width, long count) {
        this.path = path;
        this.tokens = tokens;
        this.width = width;
        this.count = count;
    }

    /** Maps a shard, checking its header against the file's size. */
    public static TokenShard open(Path path) throws IOException {
        if (!Files.isRegularFile(path)) throw new IllegalArgumentException("token shard " + path + " does not exist");
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < HEADER_BYTES)
                throw new IllegalArgumentException("token shard " + path + " is " + size + " bytes, shorter than its "
                        + HEADER_BYTES + "-byte header (truncated?)");
            ByteBuffer h = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(h, 0);
            long magic = h.getLong(0);
            int version = h.getInt(8), width = h.getInt(12);
            long count = h.getLong(16);
            if (magic != MAGIC) throw new IllegalArgumentException("token shard " + path + " does not start with magic STRATOK1: not a token shard");
            if (version != VERSION) throw new IllegalArgumentException("token shard " + path + " has version " + version + ", expected " + VERSION);
            if (width != 2 && width != 4) throw new IllegalArgumentException("token shard " + path + " has token width " + width + ", expected 2 or 4");
            long expected = HEADER_BYTES + count * width;
            if (count < 0 || size != expected)
                throw new IllegalArgumentException("token shard " + path + " declares " + count + " tokens (" + expected
                        + " bytes) but has " + size + " bytes" + (size < expected ? " (truncated?)" : ""));
            if (count * width > Integer.MAX_VALUE)
                throw new IllegalArgumentException("token shard " + path + " holds more than 2 GiB of tokens; prepare smaller shards");
            ByteBuffer data = ch.map(FileChannel.MapMode.READ_ONLY, HEADER_BYTES, count * width).order(ByteOrder.LITTLE_ENDIAN);
            return new TokenShard(path, data, width, count);
        }
    }

    /** Writes tokens to a new shard (via a temporary file and rename, so a crash leaves no partial shard). */
    public static void write(Path path, int[] tokens, int from, int to, int vocabSize) throws IOException {
        int width = vocabSize <= 65536 ? 2 : 4;
        ByteBuffer buf = ByteBuffer.allocate(HEADER_BYTES + (to - from) * width).order(ByteOrder.LITTLE_ENDIAN);
        buf.put(header(width, to - from));
        for (int i = from; i < to; i++) {
            if (width == 2) buf.putShort((short) tokens[i]);
            else buf.putInt(tokens[i]);
        }
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        try (OutputStream out = Files.newOutputStream(tmp)) {
            out.write(buf.array());
        }
        Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** The 32-byte header of a shard of {@code count} tokens of {@code width} bytes, ready to write. */
    static ByteBuffer header(int width, long count) {
        ByteBuffer h = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        h.putLong(MAGIC).putInt(VERSION).putInt(width).putLong(count).putLong(0);
        return h.flip();
    }

    public long count() { return count; }

    public Path path() { return path; }

    public int get(long i) {
        return width == 2 ? tokens.getShort((int) (i * 2)) & 0xffff : tokens.getInt((int) (i * 4));
    }

    /** Copies tokens [from, from + n) into dst at offset. */
    public void read(long from, int[] dst, int offset, int n) {
        for (int i = 0; i < n; i++) dst[offset + i] = get(from + i);
    }
}
