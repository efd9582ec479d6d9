package dev.strata.checkpoints;

import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/** {@link Storage} on the local file system; files are memory-mapped for reading. */
public final class LocalStorage implements Storage {

    /** The stream forces its bytes to disk on close, so a committed rename never exposes unwritten data. */
    @Override public OutputStream create(String path) throws IOException {
        Path p = Path.of(path);
        if (p.getParent() != null) Files.createDirectories(p.getParent());
        FileOutputStream file = new FileOutputStream(p.toFile());
        return new BufferedOutputStream(new FilterOutputStream(file) {
            @Override public void write(byte[] b, int off, int len) throws IOException { file.write(b, off, len); }

            @Override public void close() throws IOException {
                try (file) {
                    file.getChannel().force(true);
                }
            }
        }, 1 << 20);
    }

    @Override public ByteBuffer read(String path, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(Path.of(path), StandardOpenOption.READ)) {
            if (offset + length > ch.size())
                throw new IOException(path + " has " + ch.size() + " bytes, cannot read " + length + " at offset " + offset);
            return ch.map(FileChannel.MapMode.READ_ONLY, offset, length);
        }
    }

    @Override public long size(String path) throws IOException { return Files.size(Path.of(path)); }

    @Override public long freeBytes(String path) throws IOException { return Files.getFileStore(Path.of(path)).getUsableSpace(); }

    @Override public boolean exists(String path) { return Files.exists(Path.of(path)); }

    @Override public void mkdirs(String path) throws IOException { Files.createDirectories(Path.of(path)); }

    @Override public void rename(String from, String to) throws IOException {
        Path target = Path.of(to);
        if (Files.exists(target)) throw new FileAlreadyExistsException(to);
        try {
            Files.move(Path.of(from), target, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the file system under " + to + " cannot rename atomically", e);
        }
    }

    @Override public void replace(String from, String to) throws IOException {
        Files.move(Path.of(from), Path.of(to), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    @Override public void delete(String path) throws IOException {
        Path root = Path.of(path);
        if (!Files.exists(root)) return;
        try (Stream<Path> walk = Files.walk(root)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    @Override public List<String> list(String dir) throws IOException {
        try (Stream<Path> s = Files.list(Path.of(dir))) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (NoSuchFileException e) {
            return List.of();
        }
    }

    @Override public String resolve(String parent, String child) { return Path.of(parent).resolve(child).toString(); }
}
