package dev.strata.config;

/** Text generated after training, to see what the model learnt. */
public record SampleSpec(int tokens, String prompt, double temperature, int topK, double topP, double repetitionPenalty) {
    static SampleSpec from(Fields f) {
        var s = new SampleSpec(f.nonNegative("sample.tokens"), f.string("sample.prompt"), f.number("sample.temperature"),
                f.nonNegative("sample.top_k"), f.number("sample.top_p"), f.number("sample.repetition_penalty"));
        f.require(s.repetitionPenalty >= 1, "sample.repetition_penalty must be 1 (off) or more, got " + s.repetitionPenalty);
        f.require(s.temperature >= 0, "sample.temperature must be 0 (greedy) or positive, got " + s.temperature);
        f.require(s.topP > 0 && s.topP <= 1, "sample.top_p must lie in (0, 1], got " + s.topP);
        return s;
    }
}
