// Reference values from llama.cpp, for scripts/parity/run.py and
// scripts/parity/real_models.py.
//   llama_logits MODEL.gguf TOKENS.txt OUT.bin THREADS [UBATCH]
//       logits of every position: OUT.bin gets n_tokens x n_vocab float32
//       values, little endian; all tokens in one micro-batch unless UBATCH
//       (1: one token at a time, which takes llama.cpp's other kernels)
//   llama_logits tokenize MODEL.gguf TEXT.txt
//       the token ids of the text (BOS as the model asks, special tokens
//       parsed), whitespace-separated on stdout
//   llama_logits greedy MODEL.gguf TOKENS.txt N THREADS
//       N greedy tokens after the prompt, whitespace-separated on stdout
// TOKENS.txt holds whitespace-separated token ids.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// Without the repacked "extra" weight buffers: the AMX path crashes on Q4_1
// matrices in this llama.cpp, and the plain CPU kernels are the reference.
static llama_model * load(const char * path) {
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(path, mp);
    if (!model) { std::fprintf(stderr, "cannot load %s\n", path); std::exit(1); }
    return model;
}

static int tokenize(const char * model_path, const char * text_path) {
    std::ifstream in(text_path);
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string text = buf.str();
    llama_model * model = load(model_path);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::vector<llama_token> ids(text.size() + 16);
    int n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), true, true);
    if (n < 0) { std::fprintf(stderr, "tokenize failed\n"); return 1; }
    for (int i = 0; i < n; i++) std::printf("%d%c", ids[i], i + 1 < n ? ' ' : '\n');
    llama_model_free(model);
    return 0;
}

static int greedy(const char * model_path, const char * tokens_path, int n_new, int threads) {
    std::vector<llama_token> tokens;
    std::ifstream in(tokens_path);
    for (long t; in >> t;) tokens.push_back((llama_token) t);
    llama_model * model = load(model_path);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (int) tokens.size() + n_new + 16;
    cp.n_batch = cp.n_ubatch = (int) tokens.size();
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (llama_decode(ctx, llama_batch_get_one(tokens.data(), (int) tokens.size())) != 0) return 1;
    for (int i = 0; i < n_new; i++) {
        const float * logits = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int v = 1; v < n_vocab; v++) if (logits[v] > logits[best]) best = v;
        std::printf("%d%c", best, i + 1 < n_new ? ' ' : '\n');
        if (llama_decode(ctx, llama_batch_get_one(&best, 1)) != 0) return 1;
    }
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc == 4 && std::strcmp(argv[1], "tokenize") == 0) return tokenize(argv[2], argv[3]);
    if (argc == 6 && std::strcmp(argv[1], "greedy") == 0) {
        return greedy(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]));
    }
    if (argc != 5 && argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL.gguf TOKENS.txt OUT.bin THREADS [UBATCH]\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> tokens;
    std::ifstream in(argv[2]);
    for (long t; in >> t;) tokens.push_back((llama_token) t);
    const int n = (int) tokens.size();
    llama_model * model = load(argv[1]);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n + 16;
    cp.n_batch = n;
    cp.n_ubatch = argc == 6 ? std::atoi(argv[5]) : n;
    cp.n_threads = cp.n_threads_batch = std::atoi(argv[4]);
    // Keep the cache in f32 (llama.cpp defaults to f16) so that only the
    // weight quantization differs from the reference.
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { std::fprintf(stderr, "cannot create a context\n"); return 1; }
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) != 0) { std::fprintf(stderr, "decode failed\n"); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::FILE * out = std::fopen(argv[3], "wb");
    for (int i = 0; i < n; i++) std::fwrite(llama_get_logits_ith(ctx, i), sizeof(float), n_vocab, out);
    std::fclose(out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
