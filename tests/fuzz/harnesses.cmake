# The fuzz harnesses (tests/fuzz/fuzz_<name>.c), shared by tests/fuzz (libFuzzer) and tests/robust
# (the replay build). scripts/fuzz.sh runs the same list.
set(MP_FUZZ_HARNESSES
  gguf safetensors hfjson llama2c ggml_bin          # model-file readers
  whisper mmproj                                    # model loaders on top of them
  image imgproc audio video                         # media
  tok_load tokenize jinja batch)                    # tokenizers, chat templates, batch requests
