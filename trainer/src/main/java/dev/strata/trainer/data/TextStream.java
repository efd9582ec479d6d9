package dev.strata.trainer.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * Reads a .txt or .jsonl input piece by piece, so its size is not bounded by memory: a .txt file in chunks cut
 * where GPT-2's pre-tokenizer would cut anyway (see {@link #safeCut}), so the tokens are those of the whole file; a .jsonl file one {@code {"text": ...}} document per line. The bytes must
 * be UTF-8 text; an invalid byte or a NUL is refused with the file and the offset.
 */
final class TextStream {
    static final int CHUNK_CHARS = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path input;
    private final int chunkChars;
    private long bytesRead;

    TextStream(Path input, int chunkChars) {
        this.input = input;
        this.chunkChars = chunkChars;
    }

    /** Bytes of the input consumed so far (for progress). */
    long bytesRead() { return bytesRead; }

    /** Calls {@code text} with each chunk of a .txt file, {@code document} with each document of a .jsonl file. */
    void read(Consumer<String> text, Consumer<String> document) throws IOException {
        String name = input.getFileName().toString();
        boolean jsonl = name.endsWith(".jsonl");
        if (!jsonl && !name.endsWith(".txt")) throw new IllegalArgumentException("input file " + input + " must end in .txt or .jsonl");
        try (InputStream in = counting(Files.newInputStream(input));
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8.newDecoder()
                     .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)), 1 << 16)) {
            if (jsonl) readLines(r, document);
            else readChunks(r, text);
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("input file " + input + " is not UTF-8 text (an invalid byte near offset " + bytesRead
                    + "); convert it first, e.g. iconv -f latin1 -t utf-8");
        }
    }

    private void readChunks(BufferedReader r, Consumer<String> text) throws IOException {
        char[] buf = new char[chunkChars];
        StringBuilder pending = new StringBuilder();
        int n;
        while ((n = r.read(buf)) > 0) {
            refuseNul(buf, n);
            pending.append(buf, 0, n);
            int cut = safeCut(pending);
            if (cut > 0) {
                text.accept(pending.substring(0, cut));
                pending.delete(0, cut);
            }
        }
        if (!pending.isEmpty()) text.accept(pending.toString());
    }

    /**
     * The last index before which the text can be cut without changing its tokens, or 0: before a space that follows
     * a non-space and precedes a letter (" word" is one piece either way), or between punctuation other than an
     * apostrophe (which starts contractions) and a letter, as in text without spaces.
     */
    static int safeCut(CharSequence s) {
        for (int i = s.length() - 2; i > 0; i--) {
            char before = s.charAt(i - 1), at = s.charAt(i);
            if (at == ' ' && !Character.isWhitespace(before) && Character.isLetter(s.charAt(i + 1))) return i;
            if (Character.isLetter(at) && before != '\'' && !Character.isWhitespace(before) && !Character.isLetterOrDigit(before)
                    && !Character.isSurrogate(before)) return i;
        }
        return 0;
    }

    private void readLines(BufferedReader r, Consumer<String> document) throws IOException {
        String line;
        int lineNo = 0;
        while ((line = r.readLine()) != null) {
            lineNo++;
            if (line.isBlank()) continue;
            if (line.indexOf('\0') >= 0) refuseNul(line.toCharArray(), line.length());
            JsonNode doc;
            try {
                doc = JSON.readTree(line);
            } catch (IOException e) {
                throw new IllegalArgumentException(input + ":" + lineNo + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
            }
            if (doc == null || !doc.path("text").isTextual())
                throw new IllegalArgumentException(input + ":" + lineNo + ": expected an object with a string field \"text\"");
            document.accept(doc.get("text").asText());
        }
    }

    private void refuseNul(char[] buf, int n) {
        for (int i = 0; i < n; i++)
            if (buf[i] == '\0')
                throw new IllegalArgumentException("input file " + input + " holds a NUL byte near offset " + bytesRead
                        + ": it looks like a binary file, not text");
    }

    private InputStream counting(InputStream in) {
        return new FilterInputStream(in) {
            @Override public int read() throws IOException {
                int b = super.read();
                if (b >= 0) bytesRead++;
                return b;
            }

            @Override public int read(byte[] b, int off, int len) throws IOException {
                int n = super.read(b, off, len);
                if (n > 0) bytesRead += n;
                return n;
            }
        };
    }
}
