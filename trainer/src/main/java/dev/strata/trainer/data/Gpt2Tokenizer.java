package dev.strata.trainer.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;

/** GPT-2's byte-level BPE (r50k_base, 50257 tokens, {@code <|endoftext|>} = 50256). */
public final class Gpt2Tokenizer {
    public static final int VOCAB_SIZE = 50257, END_OF_TEXT = 50256;
    private final Encoding encoding = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE);

    /** Plain text to tokens; special-token text in the input is encoded as ordinary text. */
    public int[] encode(String text) { return encoding.encodeOrdinary(text).toArray(); }

    public String decode(int[] tokens) {
        IntArrayList list = new IntArrayList(tokens.length);
        for (int t : tokens) list.add(t);
        return encoding.decode(list);
    }
}
