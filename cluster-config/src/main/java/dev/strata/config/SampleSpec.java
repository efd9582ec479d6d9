package dev.strata.config;

/** Text generated after training, to see what the model learnt. */
public record SampleSpec(int tokens, String prompt, double temperature, int topK) {
    static SampleSpec from(Fields f) {
        var s = new SampleSpec(f.nonNegative("sample.tokens"), f.string("sample.prompt"), f.number("sample.temperature"),
                f.nonNegative("sample.top_k"));
        f.require(s.temperature > 0, "sample.temperature must be positive, got " + s.temperature);
        return s;
    }
}
