/* cmd_generate.c — `mmpipe generate`: text continuation with a decoder LLM, streamed to stdout.
 *
 * stdout carries only the generated text (with --temp 0, exactly the greedy continuation); timings and
 * messages go to stderr. */
#include "cli.h"
#include "runtime/textmodel.h"
#include "mmpipe.h"

#include "kernels/mp.h"
#include "llm/jinja.h"
#include "llm/kvcache.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/mmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe generate -m MODEL [-p PROMPT | -f FILE] [options]\n"
            "  -m, --model PATH        GGUF file, HF folder, or llama2.c .bin checkpoint\n"
            "  -p, --prompt TEXT       prompt (default: empty, i.e. just BOS)\n"
            "  -f, --file FILE         read the prompt from FILE\n"
            "      --tokenizer FILE    tokenizer (llama2.c tokenizer.bin; default: beside the model)\n"
            "  -n, --n-predict N       max new tokens (default 256)\n"
            "      --temp T            temperature; 0 = greedy (default 1.0)\n"
            "      --top-k K           top-k (default 0 = off)\n"
            "      --top-p P           top-p (default 0.9; 1 = off)\n"
            "      --min-p P           min-p (default 0 = off)\n"
            "      --repeat-penalty R  repetition penalty (default 1 = off)\n"
            "      --frequency-penalty F, --presence-penalty P (default 0)\n"
            "      --repeat-last-n N   tokens the penalties look at (default 64, -1 = all)\n"
            "  -s, --seed S            sampling seed (default: time)\n"
            "      --stop TEXT         stop when TEXT is generated (repeatable)\n"
            "      --ignore-eos        do not stop at end-of-sequence tokens\n"
            "  -c, --ctx N             context size (default: the model's, at most prompt + n)\n"
            "      --logprobs          print each generated token's log-probability to stderr\n"
            "      --chat              wrap the prompt in the model's chat template (user turn + generation prompt)\n"
            "      --system TEXT       system message for --chat\n"
            "      --chat-template FILE  a Jinja chat template to use instead of the model's (implies --chat)\n"
            "  -v, --verbose           print the prompt as the model sees it and its token ids to stderr\n"
            "  -t, --threads N         threads (default: physical cores)\n"
            "      --device cpu|cuda|auto\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int read_text(const char *path, char **out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mmpipe generate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) break;
        if (n + 4096 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
        }
        size_t r = fread(b + n, 1, 4096, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    if (!b) {
        fprintf(stderr, "mmpipe generate: %s: out of memory\n", path);
        return -1;
    }
    b[n] = 0;
    *out = b;
    return 0;
}

/* One user turn (and an optional system turn) rendered with the model's chat template (or FILE), with
 * the generation prompt. BOS / EOS strings are the tokenizer's. */
static int render_chat(const char *model, const char *template_file, const mp_tokenizer *tok, const char *system_msg,
                       const char *user, char **out, mp_error *err) {
    char *tmpl = NULL;
    int rc;
    if (template_file) {
        size_t n;
        rc = mp_read_file(template_file, (size_t)16 << 20, &tmpl, &n, err);
    } else if (mp_is_dir(model)) {
        rc = mp_chat_template_load_hf(model, &tmpl, err);
    } else {
        mp_gguf *g = NULL;
        rc = mp_gguf_open(&g, model, err);
        if (rc == 0) {
            rc = mp_chat_template_from_gguf(g, &tmpl, err);
            mp_gguf_free(g);
        }
        if (rc < 0 && !g) rc = mp_errf(err, "%s: has no chat template (use --chat-template FILE)", model);
    }
    if (rc < 0) return -1;
    char bos[256] = "", eos[256] = "";
    int32_t b = mp_tokenizer_bos(tok), e = mp_tokenizer_eos(tok);
    int nb = b >= 0 ? mp_token_to_bytes(tok, b, bos, sizeof bos - 1) : 0;
    int ne = e >= 0 ? mp_token_to_bytes(tok, e, eos, sizeof eos - 1) : 0;
    bos[nb > 0 && nb < (int)sizeof bos ? nb : 0] = 0;
    eos[ne > 0 && ne < (int)sizeof eos ? ne : 0] = 0;
    mp_chat_msg msgs[2];
    int n = 0;
    if (system_msg) msgs[n++] = (mp_chat_msg){"system", system_msg, NULL, 0};
    msgs[n++] = (mp_chat_msg){"user", user, NULL, 0};
    mp_chat_params p = mp_chat_default_params();
    p.bos_token = bos;
    p.eos_token = eos;
    p.add_generation_prompt = 1;
    rc = mp_chat_apply(tmpl, msgs, n, &p, out, err);
    if (rc < 0) { /* multimodal templates (SmolVLM, Qwen2-VL) iterate over content parts */
        mp_error e2;
        mp_chat_part parts[2] = {{"text", system_msg}, {"text", user}};
        for (int i = 0; i < n; i++) {
            msgs[i].parts = &parts[system_msg && i == 0 ? 0 : 1];
            msgs[i].n_parts = 1;
        }
        if (mp_chat_apply(tmpl, msgs, n, &p, out, &e2) == 0) rc = 0;
    }
    free(tmpl);
    return rc;
}

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || d != d || d < lo || d > hi) {
        fprintf(stderr, "mmpipe generate: bad value '%s' for %s\n", v, opt);
        return -1;
    }
    *out = d;
    return 0;
}

/* 1 when the tokenizer comes from an HF folder / tokenizer.json (whose vocabulary may be smaller than
 * the model's padded one); llama2.c tokenizer.bin files must match the model exactly. */
static int tok_path_is_hf(const char *model, const char *tok_path) {
    if (tok_path) {
        size_t l = strlen(tok_path);
        return mp_is_dir(tok_path) || (l >= 5 && !strcmp(tok_path + l - 5, ".json"));
    }
    return mp_is_dir(model);
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompt_file = NULL, *tok_path = NULL;
    const char *stops[MP_MAX_STOP];
    int n_stops = 0, n_predict = 256, n_ctx = 0, chat = 0, ignore_eos = 0, want_logprobs = 0, seed_given = 0, verbose = 0;
    const char *system_msg = NULL, *template_file = NULL;
    mp_sampler_params sp = mp_sampler_default_params();
    mp_sampling_given gv = {0, 0, 0, 0, 0};
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        int flag = !strcmp(a, "--chat") || !strcmp(a, "--ignore-eos") || !strcmp(a, "--logprobs") ||
                   !strcmp(a, "-v") || !strcmp(a, "--verbose");
        if (flag) {
            if (!strcmp(a, "--chat")) chat = 1;
            else if (!strcmp(a, "--ignore-eos")) ignore_eos = 1;
            else if (!strcmp(a, "--logprobs")) want_logprobs = 1;
            else verbose = 1;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mmpipe generate: %s needs a value (see --help)\n", a);
            return 1;
        }
        const char *v = argv[i + 1];
        double d;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) prompt_file = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--system")) system_msg = v;
        else if (!strcmp(a, "--chat-template")) {
            template_file = v;
            chat = 1;
        }
        else if (!strcmp(a, "--stop")) {
            if (n_stops == MP_MAX_STOP) { fprintf(stderr, "mmpipe generate: at most %d --stop strings\n", MP_MAX_STOP); return 1; }
            stops[n_stops++] = v;
        } else {
            if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
                if (parse_num(a, v, -1, 1e9, &d)) return 1;
                n_predict = (int)d;
            } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
                if (parse_num(a, v, 0, 1e8, &d)) return 1;
                n_ctx = (int)d;
            } else if (!strcmp(a, "--temp")) {
                gv.temp = 1;
                if (parse_num(a, v, 0, 1e6, &d)) return 1;
                sp.temperature = (float)d;
            } else if (!strcmp(a, "--top-k")) {
                gv.top_k = 1;
                if (parse_num(a, v, 0, 1e9, &d)) return 1;
                sp.top_k = (int)d;
            } else if (!strcmp(a, "--top-p")) {
                gv.top_p = 1;
                if (parse_num(a, v, 0, 1, &d)) return 1;
                sp.top_p = (float)d;
            } else if (!strcmp(a, "--min-p")) {
                gv.min_p = 1;
                if (parse_num(a, v, 0, 1, &d)) return 1;
                sp.min_p = (float)d;
            } else if (!strcmp(a, "--repeat-penalty")) {
                gv.rep = 1;
                if (parse_num(a, v, 1e-6, 1e6, &d)) return 1;
                sp.repeat_penalty = (float)d;
            } else if (!strcmp(a, "--frequency-penalty")) {
                if (parse_num(a, v, -1e6, 1e6, &d)) return 1;
                sp.frequency_penalty = (float)d;
            } else if (!strcmp(a, "--presence-penalty")) {
                if (parse_num(a, v, -1e6, 1e6, &d)) return 1;
                sp.presence_penalty = (float)d;
            } else if (!strcmp(a, "--repeat-last-n")) {
                if (parse_num(a, v, -1, 1e9, &d)) return 1;
                sp.penalty_last_n = (int)d;
            } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
                /* as llama2.c: a negative seed wraps around */
                char *end;
                errno = 0;
                long long s = strtoll(v, &end, 10);
                if (!*v || *end || errno) { fprintf(stderr, "mmpipe generate: bad seed '%s'\n", v); return 1; }
                sp.seed = (uint64_t)s;
                seed_given = 1;
            } else {
                fprintf(stderr, "mmpipe generate: unknown option '%s' (see --help)\n", a);
                return 1;
            }
        }
        i += 2;
    }
    if (!model) {
        usage(stderr);
        return 1;
    }
    if (prompt && prompt_file) {
        fprintf(stderr, "mmpipe generate: give -p or -f, not both\n");
        return 1;
    }
    if (system_msg && !chat) {
        fprintf(stderr, "mmpipe generate: --system needs --chat\n");
        return 1;
    }
    if (!seed_given) sp.seed = (uint64_t)time(NULL);
    char *prompt_buf = NULL;
    if (prompt_file) {
        if (read_text(prompt_file, &prompt_buf)) return 1;
        prompt = prompt_buf;
    }
    if (!prompt) prompt = "";

    int rc = 1;
    mp_error err = {{0}};
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_llama m;
    memset(&m, 0, sizeof m);
    mp_kvcache kv;
    memset(&kv, 0, sizeof kv);
    mp_llama_state st;
    memset(&st, 0, sizeof st);
    mp_tokenizer *tok = NULL;
    mp_sampler smp;
    memset(&smp, 0, sizeof smp);
    mp_stopper stp;
    mp_stopper_init(&stp, n_predict);
    int32_t *ids = NULL;
    float *logits = NULL;
    char *chat_buf = NULL;
    int ex_ok = 0;
    double t0 = now_s();
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) goto fail;
    ex_ok = 1;
    if (mp_llama_load(&m, model, &ex, &err) < 0) goto fail;
    if (mp_textmodel_generation_defaults(model, &gv, &sp, &err) < 0) goto fail;
    const mp_llama_config *c = &m.cfg;
    if (mp_textmodel_load_tokenizer(&tok, model, tok_path, c->n_vocab, &err) < 0) goto fail;
    if (mp_tokenizer_n_vocab(tok) > c->n_vocab ||
        (m.cfg.arch == MP_LLM_LLAMA && !tok_path_is_hf(model, tok_path) && mp_tokenizer_n_vocab(tok) != c->n_vocab)) {
        mp_errf(&err, "%s: the tokenizer has %d tokens, the model %d (use --tokenizer FILE)", model,
                mp_tokenizer_n_vocab(tok), c->n_vocab);
        goto fail;
    }
    double t_load = now_s();

    /* prompt, through the chat template when asked */
    if (chat && render_chat(model, template_file, tok, system_msg, prompt, &chat_buf, &err) < 0) goto fail;
    const int add_special = chat_buf == NULL, parse_special = chat_buf != NULL; /* the template has the specials */
    if (chat_buf) prompt = chat_buf;
    size_t plen = strlen(prompt);
    int cap_ids = (int)(plen + 16);
    ids = malloc((size_t)cap_ids * sizeof(int32_t));
    if (!ids) { mp_errf(&err, "out of memory"); goto fail; }
    int n_prompt = mp_tokenize(tok, prompt, plen, add_special, parse_special, ids, cap_ids);
    if (n_prompt > cap_ids) {
        free(ids);
        cap_ids = n_prompt;
        ids = malloc((size_t)cap_ids * sizeof(int32_t));
        if (!ids) { mp_errf(&err, "out of memory"); goto fail; }
        n_prompt = mp_tokenize(tok, prompt, plen, add_special, parse_special, ids, cap_ids);
    }
    if (n_prompt < 0) { mp_errf(&err, "could not tokenize the prompt"); goto fail; }
    if (n_prompt == 0) { /* a model without BOS and an empty prompt */
        if (c->bos_id < 0) { mp_errf(&err, "empty prompt and the model has no BOS token"); goto fail; }
        ids[n_prompt++] = c->bos_id;
    }
    if (verbose) {
        fprintf(stderr, "mmpipe generate: prompt text: \"%s\"\nmmpipe generate: prompt ids:", prompt);
        for (int i = 0; i < n_prompt; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    int ctx = n_ctx > 0 ? n_ctx : c->n_ctx_train;
    if (n_prompt >= ctx) {
        mp_errf(&err, "context overflow: the prompt has %d tokens, the context is %d", n_prompt, ctx);
        goto fail;
    }
    if (n_predict < 0 || n_predict > ctx - n_prompt) {
        if (n_predict > ctx - n_prompt) fprintf(stderr, "mmpipe generate: note: at most %d new tokens fit the context of %d\n", ctx - n_prompt, ctx);
        n_predict = ctx - n_prompt;
    }
    if (n_predict == 0) n_predict = ctx - n_prompt;
    stp.max_new = n_predict;
    int ctx_alloc = n_prompt + n_predict;
    if (mp_llama_kvcache_init(&m, &kv, &ex, 1, ctx_alloc, ctx_alloc, 16, &err) < 0) goto fail;
    int seq = mp_kvcache_seq_new(&kv, &err);
    if (seq < 0) goto fail;
    if (mp_sampler_init(&smp, &sp, c->n_vocab, &err) < 0) goto fail;
    if (!ignore_eos) {
        for (int i = 0; i < c->n_eos; i++) mp_stopper_add_eos(&stp, c->eos_ids[i]);
        mp_stopper_add_eos(&stp, mp_tokenizer_eos(tok));
        if (c->bos_id >= 0) mp_stopper_add_eos(&stp, c->bos_id); /* as llama2.c: BOS delimits texts */
    }
    for (int i = 0; i < n_stops; i++) mp_stopper_add_stop(&stp, stops[i]);
    logits = malloc((size_t)c->n_vocab * sizeof(float));
    if (!logits) { mp_errf(&err, "out of memory"); goto fail; }
    for (int i = 0; i < n_prompt; i++) mp_sampler_accept(&smp, ids[i]);

    mp_detok dt;
    mp_detok_init(&dt, tok, 1);
    char piece[512], out[1024];
    for (int i = 0; i < n_prompt; i++) mp_detok_push(&dt, ids[i], piece, sizeof piece); /* state after the prompt */

    mp_llama_seq sq = {seq, n_prompt, ids, NULL, NULL, 1, logits};
    if (mp_llama_forward(&m, &st, &kv, &ex, &sq, 1, &err) < 0) goto fail;
    double t_prompt = now_s();
    int n_gen = 0;
    for (;;) {
        float lp = 0;
        int32_t next = mp_sampler_sample(&smp, logits, want_logprobs ? &lp : NULL);
        n_gen++;
        mp_sampler_accept(&smp, next);
        int pl = 0;
        if (mp_detok_push(&dt, next, piece, sizeof piece) >= 0) pl = (int)strlen(piece);
        (void)pl;
        int ol = mp_stopper_push(&stp, next, piece, out, sizeof out);
        if (ol > 0) {
            fwrite(out, 1, (size_t)ol, stdout);
            fflush(stdout);
        }
        if (want_logprobs) fprintf(stderr, "logprob id=%d lp=%.6f piece=\"%s\"\n", next, (double)lp, piece);
        if (stp.stopped) break;
        sq.n = 1;
        sq.tokens = &next;
        if (mp_llama_forward(&m, &st, &kv, &ex, &sq, 1, &err) < 0) goto fail;
    }
    {
        int fl = mp_detok_flush(&dt, piece, sizeof piece);
        if (fl > 0 && stp.stopped != 2) fwrite(piece, 1, (size_t)fl, stdout);
    }
    if (isatty(STDOUT_FILENO)) fputc('\n', stdout);
    fflush(stdout);
    double t_end = now_s();
    fprintf(stderr, "mmpipe generate: load %.2f s, prompt %d tokens %.1f tok/s, generated %d tokens %.1f tok/s (%s, %d threads)\n",
            t_load - t0, n_prompt, n_prompt / (t_prompt - t_load + 1e-9), n_gen,
            n_gen > 1 ? (n_gen - 1) / (t_end - t_prompt + 1e-9) : 0.0, ex.backend == MP_BACKEND_CUDA ? "cuda" : "cpu",
            mp_threadpool_size(tp));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "mmpipe generate: %s\n", err.msg);
done:
    free(logits);
    free(ids);
    free(prompt_buf);
    free(chat_buf);
    mp_stopper_free(&stp);
    mp_sampler_free(&smp);
    if (tok) mp_tokenizer_free(tok);
    if (ex_ok) {
        mp_llama_state_free(&st, &ex);
        if (kv.seqs) mp_kvcache_free(&kv, &ex);
        mp_llama_free(&m, &ex);
        mp_exec_free(&ex);
    }
    mp_threadpool_free(tp);
    return rc;
}
