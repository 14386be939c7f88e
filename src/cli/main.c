/* main.c — the command table, option parsing and help for `tailor`.
 * Global options (--db, --quiet, --verbose, --help) are accepted before or
 * after the subcommand; each command's options come from its table row. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define DUP_OPT(def)                                                                  \
    {"on-duplicate", 0, "POLICY",                                                     \
     "what to do with a row that already exists: error, skip, replace or keep "      \
     "(default " def ")"}

/* The sampling chain and the inference context, shared by llm run and chat. */
#define SAMPLING_OPTS                                                                    \
    {"temp", 0, "T", "temperature (default 0.8; 0 = greedy)"},                           \
    {"top-k", 0, "K", "keep the K most likely tokens (default 40; 0 = off)"},            \
    {"top-p", 0, "P", "nucleus sampling (default 0.95; 1 = off)"},                       \
    {"min-p", 0, "P", "drop tokens below P times the best (default 0.05; 0 = off)"},     \
    {"repeat-penalty", 0, "X", "penalize repeated tokens (default 1 = off)"},            \
    {"presence-penalty", 0, "X", "subtract X from seen tokens' logits (default 0)"},     \
    {"seed", 's', "S", "random seed (default: from the clock)"}
/* Who talks, in which session, with which recommender and language model:
 * ask and chat. */
/* A LoRA adapter on the local model. */
#define LORA_OPTS                                                                                  \
    {"lora", 0, "FILE", "a LoRA adapter (llama.cpp's adapter GGUF) applied to the model"},        \
    {"lora-scale", 0, "S", "the adapter's scale (default 1; 0 = off)"}
/* The language model behind the agent: ask, chat and experiment. */
#define BACKEND_OPTS                                                                               \
    {"model", 'm', "FILE", "a GGUF model answers and calls the tools (default: the rules backend)"}, \
    {"llm-url", 0, "URL", "an OpenAI-compatible server answers (http://host:port/v1; key: $TAILOR_LLM_API_KEY; several, comma-separated: a fleet with failover)"}, \
    {"llm-model", 0, "NAME", "the server's model name (with --llm-url; default \"default\")"},        \
    {"chat-template", 0, "NAME", "the model's chat format if its file names none (chatml, llama3, ...)"}, \
    {"temp", 0, "T", "model sampling temperature (default 0.8; 0 = greedy)"},                      \
    {"seed", 's', "S", "model sampling seed (default: from the clock)"},                            \
    {"ctx", 'c', "N", "model context size (default: the model's, at most 4096)"},                  \
    {"threads", 't', "N", "model threads (default: all cores)"},                                    \
    LORA_OPTS
#define AGENT_OPTS                                                                                 \
    {"user", 'u', "ID", "the user talking (their history and profile); default anonymous"},       \
    {"session", 0, "ID", "continue this session"},                                                \
    {"recommender", 0, "NAME", "trained model the recommend tool uses (default: the active one)"}, \
    {"memory", 0, "POLICY", "turns beyond the model's context: truncate (default), summarize, retrieve"}, \
    {"index", 0, "FILE", "vector index for search by meaning (default DB.index/items.tvec if any; none: words)"}, \
    BACKEND_OPTS
#define ENGINE_OPTS                                                                      \
    {"ctx", 'c', "N", "context size (default: the model's, at most 4096)"},              \
    {"kv-type", 0, "T", "KV cache f32 (default, exact), f16 or q8_0 (half / a quarter of the memory)"}, \
    {"threads", 't', "N", "threads (default: all cores)"}

static const cli_cmd COMMANDS[] = {
    {"import movielens", "DIR", "import a MovieLens folder (ml-100k, ml-1m, ml-latest[-small], ml-20m)",
     "The layout is detected from the files present. Items (with year, genres and links),\n"
     "users, ratings and tags are imported in one transaction: on the first bad row the\n"
     "error names file:line and field, and the database is left exactly as it was.",
     1, 1, {DUP_OPT("error")}, cmd_import_movielens},
    {"import sequences", "FILE", "import 'user item [item ...]' lines (SASRec / S3-Rec format)",
     "Each line holds a user id followed by items in time order; a user may span several\n"
     "lines. Event times are positions in the user's sequence.",
     1, 1,
     {{"attributes", 0, "JSON", "item -> [attribute ids] JSON object (S3-Rec *_item2attributes.json)"},
      {"kind", 0, "NAME", "event kind to record (default interaction)"},
      DUP_OPT("keep")},
     cmd_import_sequences},
    {"import events", "FILE", "import events from CSV/TSV (header row) or JSON Lines",
     "Columns default to the first present of: user_id/user/userId, item_id/item/itemId/movieId,\n"
     "timestamp/time/ts/date (unix seconds or ISO 8601), value/rating/score, kind/event/type.\n"
     "Unknown users and items are created. Without a time column, row r of the file gets the\n"
     "time T + r, T being the newest stored event's time (0 in an empty store): the file's\n"
     "order is the events' order, after everything stored before.",
     1, 1,
     {{"user", 0, "COL", "user id column"},
      {"item", 0, "COL", "item id column"},
      {"time", 0, "COL", "time column (unix seconds or ISO 8601)"},
      {"value", 0, "COL", "value column (rating, count, ...)"},
      {"kind", 0, "COL", "event kind column (view, click, rating, purchase, ...)"},
      {"default-kind", 0, "NAME", "kind when there is no kind column (default interaction)"},
      {"format", 0, "FMT", "csv, tsv or jsonl (default: from the file name)"},
      DUP_OPT("keep")},
     cmd_import_events},
    {"import items", "FILE", "import a catalogue from CSV/TSV (header row) or JSON Lines",
     "Columns other than id, title and text are stored as the item's attributes (JSON).",
     1, 1,
     {{"id", 0, "COL", "item id column (default item_id/id/item/itemId/movieId)"},
      {"title", 0, "COL", "title column (default title/name)"},
      {"text", 0, "COL", "text column (default text/description/overview/summary)"},
      {"format", 0, "FMT", "csv, tsv or jsonl (default: from the file name)"},
      DUP_OPT("error")},
     cmd_import_items},
    {"import kg", "TRIPLES", "import a knowledge graph: triples, and which entities are catalogue items",
     "TRIPLES: head, relation, tail per line, tab-separated (comma-separated for .csv; a first\n"
     "row 'head relation tail' is a header) or JSON Lines {\"head\", \"relation\", \"tail\"}.\n"
     "--entity-map links entities to items: item id, then entity, per line (KGCN's\n"
     "item_index2entity_id.txt); items not in the store are created. One transaction.",
     1, 1,
     {{"entity-map", 0, "FILE", "item id and entity per line"},
      {"relation-names", 0, "FILE", "relation id and name per line, for graphs that number their relations"},
      DUP_OPT("error")},
     cmd_import_kg},
    {"kg derive", "", "add the catalogue's own triples: attribute values (genres, year) and tags",
     "Each item becomes the entity item:ID with item:ID -KEY-> KEY:VALUE for every text value and\n"
     "whole number of its attributes (identifiers such as imdb_id left out) and item:ID -tag->\n"
     "tag:TEXT for its tags. Triples already there are kept, so it can run again.",
     0, 0, {{0}}, cmd_kg_derive},
    {"kg stats", "", "the knowledge graph: triples, entities, relations, items linked", NULL, 0, 0,
     {{"json", 0, NULL, "print JSON"}}, cmd_kg_stats},
    {"kg neighbours", "ENTITY", "an entity's links (with --item: an item's)", NULL, 1, 1,
     {{"item", 0, NULL, "ENTITY is an item id"},
      {"relation", 'r', "NAME", "only links of this relation"},
      {"k", 'k', "N", "at most N links (default 50)"},
      {"json", 0, NULL, "print JSON"}},
     cmd_kg_neighbours},
    {"kg paths", "", "how an item connects to a user's items (or to given items) in the graph",
     "Paths of at most --hops links from --item to the items of --user's history (or --to),\n"
     "shortest first and, among those, through the least connected entities (the most specific\n"
     "reasons): 'A -music.artist.origin-> X <-music.artist.origin- B'.",
     0, 0,
     {{"item", 'i', "ID", "the item to explain"},
      {"user", 'u', "ID", "whose history the paths lead to"},
      {"to", 0, "IDS", "comma-separated items the paths lead to (instead of --user)"},
      {"hops", 0, "N", "1 to 3 (default 3)"},
      {"k", 'k', "N", "paths at most (default 5)"},
      {"json", 0, NULL, "print JSON"}},
     cmd_kg_paths},
    {"kg complete", "", "propose missing facts of one relation for items that lack it",
     "Each item entity without a --relation triple gets the most likely tail by --method:\n"
     "transe or distmult (trained on the graph now), llm (a language model's answers, decoded\n"
     "as entity names only, --samples voting) or combined (half TransE's probability, half the\n"
     "votes). Proposals are stored with their source and confidence but not used until\n"
     "tailor kg accept.",
     0, 0,
     {{"relation", 'r', "NAME", "the relation to complete"},
      {"method", 0, "M", "transe (default), distmult, llm or combined"},
      {"limit", 0, "N", "items asked at most (default 100)"},
      {"samples", 0, "N", "llm: answers per question (default 5)"},
      {"epochs", 0, "N", "transe, distmult: training epochs (default 100)"},
      BACKEND_OPTS},
     cmd_kg_complete},
    {"kg proposals", "", "facts proposed and not yet accepted, most confident first", NULL, 0, 0,
     {{"k", 'k', "N", "show at most N (default 50)"}, {"json", 0, NULL, "print JSON"}}, cmd_kg_proposals},
    {"kg accept", "", "accept proposed facts into the graph (by confidence, or all)", NULL, 0, 0,
     {{"min-confidence", 0, "X", "accept proposals at least this confident (0 to 1)"},
      {"source", 0, "NAME", "only those of this method (transe, distmult, llm, combined)"},
      {"all", 0, NULL, "accept every proposal"}},
     cmd_kg_accept},
    {"datasets list", "", "list the datasets tailor can fetch, and which are cached", NULL, 0, 0,
     {{"dir", 0, "DIR", "cache folder (default $XDG_CACHE_HOME/tailor)"}}, cmd_datasets_list},
    {"datasets fetch", "NAME", "download, verify and unpack a dataset into the cache",
     "Downloads NAME.zip, checks its size and digest, and unpacks it into DIR/NAME.\n"
     "Offline, --from takes the zip (or the unpacked folder) from a local folder instead.\n"
     "Prints the dataset's folder on stdout.",
     1, 1,
     {{"dir", 0, "DIR", "cache folder (default $XDG_CACHE_HOME/tailor)"},
      {"from", 0, "DIR", "take NAME.zip or NAME/ from this folder instead of downloading"},
      {"sha256", 0, "HEX", "expected SHA-256 of the zip (for a mirror's copy)"},
      {"url", 0, "URL", "download from this URL prefix (mirror; default $TAILOR_DATASETS_URL)"},
      {"force", 'f', NULL, "download again even if cached"}},
     cmd_datasets_fetch},
    {"train", "MODEL", "train a recommender on the store, save it and make it the active model",
     "MODEL is one of: pop, itemknn, als, bpr, ease, sasrec, kgcn (docs/models.md lists each one's\n"
     "parameters and defaults). The model file goes to DB.models/NAME.tmod beside the database.\n"
     "--auto first chooses the parameters on a validation split (each user's second-last item,\n"
     "full ranking, NDCG@10) from the model's own grid, within --budget seconds, and prints\n"
     "every combination it tried; parameters given with --param stay fixed.",
     1, 1,
     {{"param", 'p', "K=V", "model parameter (repeatable), e.g. --param factors=128"},
      {"name", 0, "NAME", "name to save under (default: the model kind)"},
      {"auto", 0, NULL, "choose parameters on the validation split first"},
      {"budget", 0, "SECONDS", "--auto: time for trying parameters (default 120)"},
      {"no-activate", 0, NULL, "keep the current active model (the first model is always active)"},
      {"kind", 0, "NAME", "train on events of this kind only"},
      {"min-value", 0, "X", "train on events with value >= X only"},
      {"threads", 't', "N", "threads (default: all cores)"},
      {"seed", 0, "S", "random seed (default 42)"}},
     cmd_train},
    {"recommend", "", "top-k items for a user, with titles, scores and optional explanations",
     "Items the user already has are excluded. --history recommends for an anonymous\n"
     "history (a cold user, a chat session) instead of a stored user. A user or history\n"
     "the model knows nothing about gets the most popular items, and the output says so.",
     0, 0,
     {{"user", 'u', "ID", "user (external id)"},
      {"history", 0, "IDS", "comma-separated item ids: recommend for this history"},
      {"k", 'k', "N", "how many (default 10)"},
      {"model", 'm', "NAME", "model name (default: the active model)"},
      {"filter", 0, "COND", "KEY=VALUE (is or contains), KEY!=VALUE, KEY>=N or KEY<=N (repeatable)"},
      {"explain", 'e', NULL, "show the signals behind each item (what the model can say)"},
      {"novelty", 0, "X", "0 (default) to 1: move less popular items up"},
      {"cold", 0, "N", "the last N places for items nobody has had yet, by the knowledge graph (default 0)"},
      {"json", 0, NULL, "print JSON"}},
     cmd_recommend},
    {"similar", "", "items most similar to an item, by a trained model",
     "Without --model: the active model, or the newest model that has item similarity\n"
     "when the active one has none (pop).",
     0, 0,
     {{"item", 'i', "ID", "item (external id)"},
      {"k", 'k', "N", "how many (default 10)"},
      {"model", 'm', "NAME", "model name (default: the active model)"},
      {"filter", 0, "COND", "KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N (repeatable)"},
      {"json", 0, NULL, "print JSON"}},
     cmd_similar},
    {"search", "WORDS...", "full-text search of the catalogue: titles, texts and tags",
     "Items holding any of the words, ranked by BM25 (FTS5): a word in the title weighs\n"
     "twice a word in the text; tags count half, more for tags many users gave.",
     1, 64,
     {{"k", 'k', "N", "how many (default 10)"},
      {"filter", 0, "COND", "KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N (repeatable)"},
      {"mode", 0, "M", "words (default: BM25), vectors (the index of tailor index build) or hybrid (both, fused)"},
      {"model", 'm', "FILE", "vectors, hybrid: the model that embeds the query (default: the index's)"},
      {"pooling", 0, "P", "vectors, hybrid: mean, last or cls, as the index was built (default: the file's)"},
      {"index", 0, "FILE", "the vector index (default DB.index/items.tvec)"},
      {"json", 0, NULL, "print JSON"}},
     cmd_search},
    {"index build", "", "embed every item's title, text and tags with a GGUF model, for search by meaning",
     "Writes DB.index/items.tvec: unit vectors (the model's mean-pooled, or last-token, hidden\n"
     "state) with the model's path, searched exactly by tailor search --mode vectors|hybrid\n"
     "(hybrid fuses the word and vector rankings by reciprocal rank, k = 60). Large catalogues\n"
     "also get an approximate index (Faiss, FILE.ann), and its recall@10 against exact search\n"
     "is measured and printed.",
     0, 0,
     {{"model", 'm', "FILE", "the GGUF model that embeds (an embedding model, or any the engine runs)"},
      {"pooling", 0, "P", "mean, last or cls (default: the file's, for BERT models; mean otherwise)"},
      {"approximate", 0, "KIND", "hnsw, ivf, none, or auto (default: hnsw from 50,000 items, none below)"},
      {"index", 0, "FILE", "where to write (default DB.index/items.tvec)"}},
     cmd_index_build},
    {"ask", "TEXT...", "one turn of the conversational recommender (for scripts)",
     "The agent reads the request, calls its tools (recommend, search, item_info, similar_items,\n"
     "user_profile) and answers; every item shown is an item of the catalogue. With no language\n"
     "model it uses the rules backend, which reads requests with the catalogue itself. A new\n"
     "session is started unless --session continues one (its id is printed on stderr, and in\n"
     "--json output).",
     1, 64,
     {AGENT_OPTS,
      {"json", 0, NULL, "print {\"answer\", \"items\", \"tool_calls\", \"mentions\", \"session\"}"},
      {"verbose", 0, NULL, "show each tool call, its arguments and time (stderr)"}},
     cmd_ask},
    {"chat", "", "talk with the conversational recommender (line editing and history)",
     "Each line is a turn: ask for recommendations (\"three comedies from the 90s\"), similar\n"
     "items (\"something like Toy Story\"), a search (\"films about time travel\"), \"more\",\n"
     "\"why\", or state what you like and what you never want (\"no horror\"): standing\n"
     "constraints are kept and applied to every later recommendation. /exit or Ctrl-D leaves.",
     0, 0,
     {AGENT_OPTS,
      {"verbose", 0, NULL, "show each tool call, its arguments and time (stderr)"}},
     cmd_chat},
    {"serve", "", "the HTTP server: REST API, OpenAI-compatible /v1, metrics and the web page",
     "Serves the store over HTTP until SIGINT or SIGTERM (requests in flight finish first).\n"
     "Routes: /api/... (items, users, events, recommendations, models, chat sessions), /v1/...\n"
     "(OpenAI chat/completions/embeddings/models, with --model), /healthz, /readyz, /metrics,\n"
     "/openapi.json and the page at /. Every route but /healthz and the page needs\n"
     "Authorization: Bearer KEY (tailor keys create). docs/api.md has every route.",
     0, 0,
     {{"host", 0, "ADDR", "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"},
      {"port", 'p', "PORT", "port (default 8080; 0 = any free port, printed)"},
      {"threads", 0, "N", "worker threads (default: the number of cores)"},
      {"queue", 0, "N", "requests that may wait for a worker before 503 (default 256)"},
      {"max-body", 0, "BYTES", "largest request body (default 1048576); larger: 413"},
      {"timeout", 0, "SECONDS", "drop a client idle this long (default 30)"},
      {"web", 0, NULL, "serve the page at / (the default)"},
      {"no-web", 0, NULL, "do not serve the page"},
      {"metrics-open", 0, NULL, "serve /metrics without a key"},
      {"reports", 0, "DIR", "evaluation reports the page shows (tailor eval --report DIR; default DB.reports)"},
      {"index", 0, "FILE", "vector index for chat's search by meaning (default DB.index/items.tvec if any; none: words)"},
      {"model", 'm', "FILE", "a GGUF model for /v1 and the chat (default: the rules backend; /v1 answers 503)"},
      {"llm-url", 0, "URL", "an OpenAI-compatible server for the chat and /v1 instead (several, comma-separated: a fleet with failover)"},
      {"llm-model", 0, "NAME", "the server's model name (with --llm-url; default \"default\")"},
      {"served-name", 0, "NAME", "the model's id in /v1/models (default: the file's name)"},
      {"chat-template", 0, "NAME", "the model's chat format if its file names none (chatml, llama3, ...)"},
      {"temp", 0, "T", "chat sampling temperature (default 0.8; /v1 requests set their own)"},
      {"seed", 's', "S", "sampling seed (default: from the clock)"},
      {"ctx", 'c', "N", "model context size (default: the model's, at most 4096)"},
      {"model-threads", 't', "N", "model threads (default: all cores)"},
      LORA_OPTS},
     cmd_serve},
    {"keys create", "", "create an API key for the server (printed once; only its hash is stored)",
     "An admin key may call every route for every user. A user key acts only for its user:\n"
     "another user's data, sessions or events answer 403. User keys are rate-limited (default\n"
     "50 requests/s; a burst of twice that), admin keys are not unless --rate is given.",
     0, 0,
     {{"role", 0, "ROLE", "admin or user"},
      {"user", 'u', "ID", "the user a user key acts for"},
      {"name", 0, "NAME", "a name to find it by"},
      {"rate", 0, "N", "requests per second allowed (0 = no limit)"}},
     cmd_keys_create},
    {"keys list", "", "list API keys (prefix, role, user, name, rate, whether revoked)", NULL, 0, 0,
     {{"json", 0, NULL, "print {\"keys\": [...]}"}}, cmd_keys_list},
    {"keys revoke", "KEY", "revoke an API key by id, prefix or name (401 from then on)", NULL, 1, 1, {{0}},
     cmd_keys_revoke},
    {"experiment", "NAME",
     "measure the system: agent latency and memory, hallucination, cold items, the LLM as recommender",
     "tool-latency: a suite of 30 requests through the agent, --rounds times; per step of a turn\n"
     "(context, intent, tools, answer, store, the whole turn) mean, p50, p99 and max in ms.\n"
     "context-stress: facts stated through a conversation of --turns turns in a context of\n"
     "--budget tokens; per memory policy, the share of them in front of the model when asked,\n"
     "as the conversation grows (with --report DIR, a chart). The sessions they make are removed.\n"
     "hallucination: hide a share of the knowledge graph's triples and ask TransE, DistMult and (with\n"
     "--model or --llm-url) a language model, free and constrained to entity names, for each tail:\n"
     "hits@1/10, MRR and how often the answer is no entity or a false one (--report DIR: a chart).\n"
     "cold-items: hide --hide of the items with --min-events events (all their events) and rank them\n"
     "for the users who had them by knowledge-graph neighbours, text vectors (tailor index build) and\n"
     "both: recall@k and NDCG@k, against random.\n"
     "llm-ranker: a retriever's top candidates re-ranked by a language model (--model, --lora) reading\n"
     "the user's recent titles, one letter per candidate scored by its logit; HR@10 and NDCG@10 against\n"
     "the retriever alone (leave-one-out). --export FILE writes fine-tuning examples for llm finetune.\n"
     "With --llm-url, a server's completions with logprobs score the letters (--top-logprobs; its chat\n"
     "endpoint's logprobs when its completions report none).\n"
     "icl-shots: llm-ranker with 0, 2 and 5 examples from each user's own history in the prompt.\n"
     "llm-generative: the model writes the next item's title under a trie of the catalogue's titles\n"
     "(beam search, width 20): HR@10 and NDCG@10 against the retriever's top 10; with --ids FILE, the\n"
     "item's semantic ID instead.\n"
     "llm-generative --export FILE writes the text a generator's base learns from (every title, then\n"
     "the training part's sequences in titles, for llm train).\n"
     "semantic-ids: TIGER-style IDs (\"aam bad cbo\", a word per code) learned by residual k-means\n"
     "(--levels, --codebook; balanced, every code on at most items / codebook items, unless\n"
     "--unbalanced) from the item vectors of --retriever (default als) trained on the split's\n"
     "training part; to --export DIR: codes.tsv, and train.txt (the training sequences in IDs).\n"
     "llm-vs-traditional: --models (default pop,als,ease,sasrec) and, with --model, llm-ranker and\n"
     "llm-generative on the same users: the harness's table, paired tests, --report DIR (report.md, ndcg.svg).\n"
     "agent-data: --examples conversations made from the catalogue (a request in one of many phrasings,\n"
     "the tool call it means, the tool's result, an answer) in OpenAI's fine-tuning format with tools,\n"
     "to --export DIR: train.jsonl, and heldout.jsonl with phrasings training never saw (llm finetune).\n"
     "tool-calls: the requests of --data FILE through the agent with the backend (rules, --model,\n"
     "--llm-url): the share with the right tool, and with the right tool and arguments.",
     1, 1,
     {BACKEND_OPTS,
      {"rounds", 0, "N", "tool-latency: times through the suite (default 10)"},
      {"budget", 0, "TOKENS", "context-stress: the context the conversation may take (default 2000)"},
      {"turns", 0, "N", "context-stress: turns in the conversation (default 120)"},
      {"json", 0, "FILE", "also write the figures as JSON"},
      {"report", 0, "DIR", "context-stress, hallucination: write a chart into DIR"},
      {"queries", 0, "N", "hallucination: hidden triples asked (default 200)"},
      {"samples", 0, "N", "hallucination: a language model's answers per question, voting (default 5)"},
      {"epochs", 0, "N", "hallucination: TransE and DistMult training epochs (default 100)"},
      {"ids", 0, "FILE", "llm-generative: items as the semantic IDs of FILE (semantic-ids' codes.tsv)"},
      {"levels", 0, "N", "semantic-ids: levels of codes (default 3)"},
      {"codebook", 0, "N", "semantic-ids: codes per level (default 64)"},
      {"unbalanced", 0, NULL, "semantic-ids: plain k-means, codes of any size (default: balanced, at most items / codebook each)"},
      {"top-logprobs", 0, "N", "llm-ranker, icl-shots with --llm-url: likeliest tokens asked for (default 20, OpenAI's limit)"},
      {"hide", 0, "SHARE", "cold-items: share of the items hidden (default 0.1)"},
      {"min-events", 0, "N", "cold-items: items with fewer events are never hidden (default 5)"},
      {"k", 'k', "N", "cold-items: cut-off of recall and NDCG (default 20)"},
      {"index", 0, "FILE", "cold-items: the item vectors (default DB.index/items.tvec, when there)"},
      {"retriever", 0, "KIND", "llm-ranker: the model proposing candidates; semantic-ids: whose item vectors (default als)"},
      {"candidates", 0, "N", "llm-ranker: candidates re-ranked, 2 to 26 (default 20)"},
      {"history", 0, "N", "llm-ranker: recent items the prompt shows (default 10)"},
      {"users", 0, "N", "llm-ranker: test users at most (default 200); tool-calls: requests at most (default all)"},
      {"export", 0, "FILE", "llm-ranker: write fine-tuning examples (JSON Lines) instead of measuring; llm-generative: the base's text; agent-data, semantic-ids: the DIR"},
      {"examples", 0, "N", "agent-data: training conversations (default 2000; a fifth as many held out, 50 at least)"},
      {"seed", 0, "N", "agent-data: the seed of the phrasings and slots (default 42)"},
      {"data", 0, "FILE", "tool-calls: conversations whose requests and first calls are asked and checked"},
      {"shots", 0, "N", "llm-ranker: in-context examples from the user's history (default 0)"},
      {"models", 0, "LIST", "llm-vs-traditional: the traditional models (default pop,als,ease,sasrec)"}},
     cmd_experiment},
    {"models list", "", "the trained models: kind, when, file size, last evaluation, which is active", NULL, 0,
     0, {{"json", 0, NULL, "print JSON"}}, cmd_models_list},
    {"models show", "[NAME]", "one model (default: the active one): parameters, training data, evaluation", NULL,
     0, 1, {{"json", 0, NULL, "print JSON"}}, cmd_models_show},
    {"models activate", "NAME", "make NAME the model that recommend and similar use",
     "The model file is loaded and checked first: a model that cannot be served is not\n"
     "activated.",
     1, 1, {{0}}, cmd_models_activate},
    {"models remove", "NAME", "delete a model (its row, then its file)",
     "When NAME was active, the newest model left becomes active.", 1, 1, {{0}}, cmd_models_remove},
    {"eval", "", "train and evaluate models under a stated split and protocol",
     "Every figure is a mean over users with its 95% confidence interval; models after\n"
     "the first are compared with it (paired, per user). Validation targets are never\n"
     "used here unless --validation is given. A name in --models is a saved model when\n"
     "one has it (its kind and parameters are retrained on the split, and the results\n"
     "become its last evaluation), else a model kind with its defaults.",
     0, 0,
     {{"models", 0, "LIST", "comma-separated saved models or kinds (default pop,itemknn,als,bpr,ease)"},
      {"param", 'p', "MODEL.K=V", "parameter of one model (repeatable), e.g. als.factors=128"},
      {"wide", 0, NULL, "every metric in the table (wider than 100 columns)"},
      {"split", 0, "SPLIT", "loo (default), temporal or random"},
      {"ratio", 0, "R", "test share for temporal and random splits (default 0.2)"},
      {"kcore", 0, "N", "keep users and items with at least N interactions"},
      {"protocol", 0, "P", "full (default), sampled, full,sampled (one training, both), or ctr (AUC, F1; docs/evaluation.md)"},
      {"negatives", 0, "N", "sampled: negatives per user (default 100)"},
      {"pop-negatives", 0, NULL, "sampled: draw negatives by popularity"},
      {"neg-file", 0, "FILE", "sampled: negatives from FILE ('user neg1 neg2 ...' lines)"},
      {"k", 'k', "LIST", "cut-offs, e.g. 10,20 (default 10)"},
      {"seed", 0, "S", "seed for splits, negatives and models (default 42)"},
      {"kind", 0, "NAME", "only events of this kind"},
      {"min-value", 0, "X", "only events with value >= X"},
      {"validation", 0, NULL, "evaluate on the validation split (models trained without it)"},
      {"threads", 't', "N", "threads (default: all cores)"},
      {"json", 0, "FILE", "also write the results as JSON (FILE.full.json, FILE.sampled.json for both)"},
      {"report", 0, "DIR", "also write DIR/report.md and DIR/ndcg.svg (DIR/full, DIR/sampled for both)"},
      {"name", 0, "NAME", "dataset name in outputs (default: the database file)"},
      {"export-split", 0, "DIR", "also write the split as TSV files (train, valid, test, ids)"}},
     cmd_eval},
    {"tune", "MODEL", "choose hyperparameters on the validation split (never on test)",
     "Tries every combination of the --grid values; each model trains on the training\n"
     "split minus validation and is scored on validation targets. With --save NAME the\n"
     "best parameters are trained on all data and saved like 'tailor train'.",
     1, 1,
     {{"grid", 'g', "K=V1,V2,...", "values to try for one parameter (repeatable)"},
      {"param", 'p', "K=V", "fixed parameter (repeatable)"},
      {"metric", 0, "NAME", "ndcg (default), hr, recall, mrr, map or precision"},
      {"k", 'k', "N", "cut-off (default 10)"},
      {"split", 0, "SPLIT", "loo (default), temporal or random"},
      {"ratio", 0, "R", "test share for temporal and random splits (default 0.2)"},
      {"kcore", 0, "N", "keep users and items with at least N interactions"},
      {"protocol", 0, "P", "full (default) or sampled"},
      {"negatives", 0, "N", "sampled: negatives per user (default 100)"},
      {"seed", 0, "S", "seed (default 42)"},
      {"kind", 0, "NAME", "only events of this kind"},
      {"threads", 't', "N", "threads (default: all cores)"},
      {"save", 0, "NAME", "train the best parameters on all data and save as NAME"}},
     cmd_tune},
    {"llm info", "[MODEL]", "print a GGUF file's metadata and tensor table", NULL, 0, 1,
     {{"model", 'm', "MODEL", "GGUF file (or give it as the argument)"}}, cmd_llm_info},
    {"llm tokenize", "[TEXT]", "print the token ids of TEXT (or --file) on one line",
     "Works on vocabulary-only GGUF files too. BOS (and EOS) are added as the vocabulary\n"
     "says unless --no-bos; control-token text is parsed only with --special.",
     0, 1,
     {{"model", 'm', "MODEL", "GGUF file with the tokenizer"},
      {"file", 'f', "FILE", "tokenize the contents of FILE"},
      {"no-bos", 0, NULL, "add no BOS/EOS"},
      {"special", 0, NULL, "parse special-token text such as <|im_start|>"},
      {"pieces", 0, NULL, "print one 'id piece' line per token"}},
     cmd_llm_tokenize},
    {"llm run", "", "generate text from a prompt with a GGUF model (streams to stdout)",
     "Only the generated text goes to stdout; timings go to stderr. --temp 0 is greedy\n"
     "(deterministic). Generation stops at an end-of-generation token, a --stop string,\n"
     "or after -n tokens. Under --grammar or --json-schema every token keeps the output a\n"
     "prefix of a string of the grammar, and it stops when that string is complete; output\n"
     "cut short by -n is an error (exit 65).",
     0, 0,
     {{"model", 'm', "MODEL", "GGUF model file"},
      {"prompt", 'p', "TEXT", "prompt text"},
      {"file", 'f', "FILE", "read the prompt from FILE"},
      {"n-predict", 'n', "N", "new tokens at most (default 128; -1 = until the end)"},
      SAMPLING_OPTS,
      {"stop", 0, "TEXT", "stop before TEXT (repeatable)"},
      {"grammar", 0, "FILE", "keep the output to the strings of a GBNF grammar (llama.cpp's syntax)"},
      {"json-schema", 0, "FILE", "keep the output to JSON that the schema in FILE accepts"},
      {"ignore-eos", 0, NULL, "do not stop at end-of-generation tokens"},
      {"no-bos", 0, NULL, "do not add BOS to the prompt"},
      {"special", 0, NULL, "parse special-token text in the prompt"},
      LORA_OPTS,
      ENGINE_OPTS},
     cmd_llm_run},
    {"llm chat", "", "chat with a GGUF model (reads user turns from stdin; or one --prompt)",
     "The model's chat template is recognised from its metadata (ChatML, Llama-3, Llama-2,\n"
     "Mistral, Zephyr, Phi-3) or named with --chat-template. The conversation stays in the\n"
     "KV cache: each turn decodes only its new tokens.",
     0, 0,
     {{"model", 'm', "MODEL", "GGUF model file"},
      {"prompt", 'p', "TEXT", "one user turn, answer, and exit"},
      {"system", 0, "TEXT", "system message"},
      {"chat-template", 0, "NAME", "chatml, llama3, llama2, mistral, zephyr or phi3"},
      {"n-predict", 'n', "N", "new tokens per answer at most (default: until the end of the turn)"},
      SAMPLING_OPTS,
      LORA_OPTS,
      ENGINE_OPTS},
     cmd_llm_chat},
    {"llm embed", "[TEXT...]", "L2-normalised text embeddings, one line of numbers per text",
     "Mean (default) or last-token pooling of the final hidden states. --file embeds each\n"
     "non-empty line of FILE.",
     0, 64,
     {{"model", 'm', "MODEL", "GGUF model file"},
      {"file", 'f', "FILE", "one text per line"},
      {"pooling", 0, "P", "mean, last or cls (default: the file's for BERT models, mean otherwise)"},
      {"json", 0, NULL, "print a JSON array of vectors"},
      {"ctx", 'c', "N", "context size (default: the model's, at most 4096)"},
      {"threads", 't', "N", "threads (default: all cores)"}},
     cmd_llm_embed},
    {"llm synth", "OUT", "write a model with random weights and the shape of a real one",
     "Shapes: smollm2-135m, qwen2.5-0.5b, llama-3.2-1b, tinyllama-1.1b: their metadata,\n"
     "tensor names and sizes, chat template and special tokens; seeded N(0, 0.02) weights.\n"
     "The vocabulary comes from --vocab (default: the GPT-2 or Llama-2 vocabulary in\n"
     "../shared/data), cut or padded to the shape's size. What benchmarks run on.",
     1, 1,
     {{"shape", 0, "NAME", "model shape (see above)"},
      {"type", 0, "TYPE", "file type: q8_0 (default), q4_0, q4_k_m, q5_k_m, q6_k, f16, ... (see llm quantize)"},
      {"vocab", 0, "GGUF", "take the vocabulary from this GGUF file"},
      {"seed", 0, "S", "random seed (default 42)"}},
     cmd_llm_synth},
    {"llm quantize", "IN OUT TYPE", "convert a GGUF model's matrices to a file type (Q4_K_M, Q8_0, ...)",
     "TYPE: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_m, q4_k_s, q4_k_m, q5_k_s,\n"
     "q5_k_m or q6_k. Each matrix gets the type the reference quantizer gives it (6 bits for\n"
     "the output matrix and some layers' attn_v/ffn_down in _M types; Q5_0/Q5_1/Q8_0 where a\n"
     "row is not a multiple of 256), with the format's reference quantizers; norms and biases\n"
     "stay F32; metadata is copied. The output is written to a temporary file first.",
     3, 3,
     {{"threads", 't', "N", "threads (default: all cores)"}},
     cmd_llm_quantize},
    {"llm train", "OUT.gguf", "train a language model from scratch on a text file (llama or qwen2 layout)",
     "Every non-empty line of --data is a document; the documents, tokenized with the tokenizer\n"
     "of --vocab (any GGUF; default the shared Llama-2 one), run on in windows of --ctx tokens,\n"
     "5% held out for validation. AdamW (decay 0.1, none on norms and biases), warm-up then\n"
     "cosine decay to a tenth of --lr, the gradient clipped at norm 1. --checkpoint saves the\n"
     "weights and optimizer state; --resume continues exactly. OUT.gguf loads in tailor and\n"
     "llama.cpp. --config FILE.json: {\"arch\", \"n_embd\", \"n_layer\", \"n_head\", \"n_head_kv\",\n"
     "\"n_ff\", \"rope_base\", \"rms_eps\", \"tied\"}.",
     1, 1,
     {{"data", 0, "FILE", "training text, one document per line"},
      {"shape", 0, "NAME", "a named shape (smollm2-135m, ...; the vocabulary is --vocab's)"},
      {"config", 0, "FILE", "the shape as JSON (see above)"},
      {"vocab", 0, "FILE", "GGUF file whose tokenizer the model gets"},
      {"bpe", 0, "N", "train a byte-level BPE tokenizer of N tokens on --data instead (kept as OUT.tokenizer.gguf)"},
      {"chat-template", 0, "NAME", "with --bpe: chatml gives the tokenizer ChatML's markers and template"},
      {"tool-prompt", 0, "brief", "the agent describes its tools to the model in one line each (a small model)"},
      {"ctx", 'c', "N", "tokens per sequence (default 128)"},
      {"batch", 'b', "N", "sequences per step (default 16)"},
      {"steps", 0, "N", "optimizer steps (default 1000)"},
      {"lr", 0, "RATE", "peak learning rate (default 1e-3)"},
      {"warmup", 0, "N", "warm-up steps (default 5% of --steps)"},
      {"val", 0, "SHARE", "share of the windows held out (default 0.05)"},
      {"eval-every", 0, "N", "validation loss every N steps (default 100; 0 = at the end)"},
      {"checkpoint", 0, "FILE", "save weights and optimizer state here"},
      {"checkpoint-every", 0, "N", "steps between checkpoints (default 200)"},
      {"resume", 0, NULL, "continue from --checkpoint"},
      {"until", 0, "N", "stop after step N (checkpointed; the schedule stays --steps')"},
      {"activation-checkpointing", 0, NULL, "keep each layer's input only, recompute the rest (less memory, ~1/3 more time)"},
      {"seed", 's', "S", "initialisation and data order (default 42)"},
      {"threads", 't', "N", "threads (default: all cores)"}},
     cmd_llm_train},
    {"llm finetune", "", "fine-tune a GGUF model: a LoRA adapter (default), merged, or every weight",
     "--data is JSON Lines: {\"messages\": [{\"role\", \"content\"}...]} in the model's chat format\n"
     "(loss on the assistant's turns) or {\"prompt\", \"completion\"} (loss on the completion).\n"
     "The adapter is llama.cpp's adapter GGUF (tailor llm run --lora, llama-cli --lora);\n"
     "--merge writes the base with it folded in, --full trains and writes every weight (F32;\n"
     "tailor llm quantize makes it smaller). The last 10% of the examples are held out;\n"
     "with --eval-every N their loss is measured every N steps and the best step's weights are\n"
     "the ones written (validation picks the checkpoint).\n"
     "An adapter trains on the base as its file has it (QLoRA-style: each matrix dequantized\n"
     "just before its product); --merge and --full hold every weight in F32.",
     0, 0,
     {{"model", 'm', "FILE", "the base model (GGUF, any type the engine reads)"},
      {"data", 0, "FILE", "training examples, JSON Lines"},
      {"out", 'o', "FILE", "the adapter (or model) to write"},
      {"lora-rank", 0, "R", "rank of the pairs (default 8)"},
      {"lora-alpha", 0, "A", "scale numerator: s = alpha / rank (default 2 x rank)"},
      {"lora-targets", 0, "LIST", "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down (default attn_q,attn_v)"},
      {"merge", 0, NULL, "write the base with the adapter merged in"},
      {"full", 0, NULL, "train every weight instead of an adapter"},
      {"chat-template", 0, "NAME", "the chat format if the model's file names none (chatml, llama3, ...)"},
      {"epochs", 0, "N", "passes over the examples (default 3)"},
      {"steps", 0, "N", "optimizer steps instead of epochs"},
      {"lr", 0, "RATE", "peak learning rate (default 1e-3)"},
      {"warmup", 0, "N", "warm-up steps (default 5%)"},
      {"ctx", 'c', "N", "an example is cut at N tokens (default 256)"},
      {"batch", 'b', "N", "examples per step (default 8)"},
      {"val", 0, "SHARE", "share of the examples held out (default 0.1)"},
      {"eval-every", 0, "N", "validation loss every N steps, the best step's weights written (default 0: at the end only)"},
      {"activation-checkpointing", 0, NULL, "keep each layer's input only, recompute the rest (less memory, more time)"},
      {"seed", 's', "S", "initialisation and order (default 42)"},
      {"threads", 't', "N", "threads (default: all cores)"}},
     cmd_llm_finetune},
    {"llm bench", "", "prompt-processing and generation speed, like llama-bench",
     "pp: one batch of -p random tokens from an empty cache (ttft: its time, the time to the\n"
     "first token); tg: -n tokens decoded one at a time from an empty cache. Each figure is\n"
     "the mean of -r runs after a warm-up. MB/tok is the weight bytes read per generated\n"
     "token (the tied embedding once); read GB/s is the machine's read bandwidth measured in\n"
     "the same run at that thread count, and bound the share of bandwidth / MB/tok reached.",
     0, 0,
     {{"model", 'm', "MODEL", "GGUF model file"},
      {"threads", 't', "LIST", "thread counts, e.g. 1,2 (default 1,2)"},
      {"prompt", 'p', "N", "prompt tokens (default 512; 0 = skip)"},
      {"gen", 'n', "N", "generated tokens (default 64; 0 = skip)"},
      {"reps", 'r', "N", "repetitions (default 3)"},
      {"no-bandwidth", 0, NULL, "skip the bandwidth measurement (it reads 1 GiB)"},
      {"ttft", 0, "P,C", "also the time to the first token of a P-token prompt, cold and with C tokens cached (1500,1200)"},
      {"json", 0, NULL, "one JSON object per thread count"}},
     cmd_llm_bench},
    {"stats", "", "counts, density, sequence-length and item-popularity distributions", NULL, 0, 0,
     {{"kind", 0, "NAME", "only events of this kind"}, {"json", 0, NULL, "print JSON"}},
     cmd_stats},
    {"version", "", "print the version", NULL, 0, 0, {{0}}, cmd_version},
    {"help", "[COMMAND]", "show help for a command", NULL, 0, 2, {{0}}, cmd_help},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const cli_opt GLOBAL_OPTS[] = {
    {"db", 0, "PATH", "database file, or a postgresql:// URL (default $TAILOR_DB or ./tailor.db)"},
    {"quiet", 'q', NULL, "no progress bars"},
    {"verbose", 'v', NULL, "more log output (same as TAILOR_LOG=info)"},
    {"help", 'h', NULL, "show help"},
};
#define NGLOBAL (sizeof GLOBAL_OPTS / sizeof GLOBAL_OPTS[0])

static size_t cmd_nopts(const cli_cmd *c) {
    size_t n = 0;
    while (n < CLI_MAX_OPTS && c->opts[n].name) n++;
    return n;
}

const char *cli_opt_get(const cli_args *a, const char *name) {
    size_t n = cmd_nopts(a->cmd);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a->cmd->opts[i].name, name)) return a->values[i];
    return NULL;
}

bool cli_flag(const cli_args *a, const char *name) { return cli_opt_get(a, name) != NULL; }

const char *const *cli_opt_all(const cli_args *a, const char *name, int *n) {
    size_t no = cmd_nopts(a->cmd);
    for (size_t i = 0; i < no; i++)
        if (!strcmp(a->cmd->opts[i].name, name)) {
            *n = a->nmulti[i];
            return a->multi[i];
        }
    *n = 0;
    return NULL;
}

bool cli_opt_int(const cli_args *a, const char *name, long def, long min, long max, long *out) {
    const char *v = cli_opt_get(a, name);
    if (!v) {
        *out = def;
        return true;
    }
    int64_t x;
    if (!parse_i64(v, strlen(v), &x) || x < min || x > max) return false;
    *out = (long)x;
    return true;
}

int cli_exit_code(int status) {
    switch (status) {
    case TAILOR_OK: return EX_OK;
    case TAILOR_EDATA:
    case TAILOR_ECHECKSUM:
    case TAILOR_EEXISTS: return EX_DATAERR;
    case TAILOR_ENOTFOUND: return EX_NOINPUT;
    case TAILOR_EINVAL: return EX_USAGE;
    case TAILOR_ENETWORK: return EX_UNAVAILABLE;
    case TAILOR_EIO:
    case TAILOR_EDB: return EX_IOERR;
    case TAILOR_EUNSUPPORTED: return EX_CONFIG;
    default: return EX_SOFTWARE;
    }
}

int cli_fail(const tailor_error *err) {
    fprintf(stderr, "tailor: %s\n", err->msg[0] ? err->msg : tailor_strerror(err->code));
    return cli_exit_code(err->code);
}

static void print_opt(FILE *f, const cli_opt *o) {
    char left[64];
    if (o->short_name)
        snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    else
        snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    fprintf(f, "  %-28s %s\n", left, o->help);
}

static void print_cmd_help(FILE *f, const cli_cmd *c) {
    fprintf(f, "usage: tailor %s%s%s [options]\n\n%s\n", c->name, *c->usage ? " " : "", c->usage,
            c->summary);
    if (c->details) fprintf(f, "\n%s\n", c->details);
    size_t n = cmd_nopts(c);
    if (n) {
        fprintf(f, "\noptions:\n");
        for (size_t i = 0; i < n; i++) print_opt(f, &c->opts[i]);
    }
    fprintf(f, "\nglobal options:\n");
    for (size_t i = 0; i < NGLOBAL; i++) print_opt(f, &GLOBAL_OPTS[i]);
}

/* Lists the commands whose name starts with prefix ("" = all). */
static void print_overview(FILE *f, const char *prefix) {
    fprintf(f,
            "tailor %s — LLM-powered personalization engine\n\n"
            "usage: tailor [--db PATH] COMMAND [options] [args]\n\ncommands:\n",
            TAILOR_VERSION_STRING);
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (pl && strncmp(COMMANDS[i].name, prefix, pl) != 0) continue;
        char left[64];
        snprintf(left, sizeof left, "%s %s", COMMANDS[i].name, COMMANDS[i].usage);
        fprintf(f, "  %-30s %s\n", left, COMMANDS[i].summary);
    }
    fprintf(f, "\nglobal options:\n");
    for (size_t i = 0; i < NGLOBAL; i++) print_opt(f, &GLOBAL_OPTS[i]);
    fprintf(f,
            "\nenvironment: TAILOR_DB (database), TAILOR_LOG (debug|info|warn|error|off),\n"
            "XDG_CACHE_HOME (dataset cache), TAILOR_DATASETS_URL (dataset mirror),\n"
            "TAILOR_FILES (a PostgreSQL store's models, index and reports; default ./tailor-files)\n"
            "'tailor help COMMAND' or 'tailor COMMAND --help' shows a command's options.\n");
}

int cli_usage_error(const cli_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tailor %s: ", a->cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: tailor %s%s%s [options]  (see 'tailor %s --help')\n", a->cmd->name,
            *a->cmd->usage ? " " : "", a->cmd->usage, a->cmd->name);
    return EX_USAGE;
}

store *cli_open_store(const cli_args *a, bool must_exist, int *exit_code) {
    store *s = NULL;
    tailor_error err = {0};
    if (must_exist && !store_is_url(a->db_path) && !file_exists(a->db_path)) {
        fprintf(stderr, "tailor: no database at %s (import data first, or pass --db PATH)\n",
                a->db_path);
        *exit_code = EX_NOINPUT;
        return NULL;
    }
    if (store_open(a->db_path, store_default_params(), &s, &err) != 0) {
        *exit_code = cli_fail(&err);
        return NULL;
    }
    return s;
}

bool cli_dup_policy(const cli_args *a, store_dup_policy def, store_dup_policy *out) {
    const char *v = cli_opt_get(a, "on-duplicate");
    if (!v) {
        *out = def;
        return true;
    }
    return store_dup_policy_parse(v, out);
}

/* Finds the command named by argv[i] (and argv[i+1] for two-word names).
 * *words receives how many arguments the name used. */
static const cli_cmd *find_command(int argc, char **argv, int i, int *words) {
    if (i >= argc) return NULL;
    for (size_t k = 0; k < NCOMMANDS; k++) {
        const char *n = COMMANDS[k].name;
        const char *sp = strchr(n, ' ');
        if (!sp) {
            if (!strcmp(n, argv[i])) {
                *words = 1;
                return &COMMANDS[k];
            }
            continue;
        }
        if ((size_t)(sp - n) == strlen(argv[i]) && !strncmp(n, argv[i], (size_t)(sp - n)) &&
            i + 1 < argc && !strcmp(sp + 1, argv[i + 1])) {
            *words = 2;
            return &COMMANDS[k];
        }
    }
    return NULL;
}

static bool is_group(const char *word) {
    size_t l = strlen(word);
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (!strncmp(COMMANDS[k].name, word, l) && COMMANDS[k].name[l] == ' ') return true;
    return false;
}

int cmd_help(cli_args *a) {
    if (a->npos == 0) {
        print_overview(stdout, "");
        return EX_OK;
    }
    int words;
    const cli_cmd *c = find_command(a->npos, a->pos, 0, &words);
    if (c) {
        print_cmd_help(stdout, c);
        return EX_OK;
    }
    if (is_group(a->pos[0])) {
        print_overview(stdout, a->pos[0]);
        return EX_OK;
    }
    fprintf(stderr, "tailor: no command '%s'; 'tailor help' lists them\n", a->pos[0]);
    return EX_USAGE;
}

int cmd_version(cli_args *a) {
    printf("tailor %s (schema version %d)\n", tailor_version(), STORE_SCHEMA_VERSION);
    return EX_OK;
}

int main(int argc, char **argv) {
    log_init_from_env();
    cli_args a = {0};
    /* TAILOR_LOG=off: errors only, no progress bars or notes either. */
    a.quiet = log_get_level() == LOG_LEVEL_OFF;
    const char *env_db = getenv("TAILOR_DB");
    a.db_path = env_db && *env_db ? env_db : "tailor.db";
    bool want_help = false;

    /* Global options before the command. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--db") && i + 1 < argc) a.db_path = argv[++i];
        else if (!strncmp(o, "--db=", 5)) a.db_path = o + 5;
        else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) a.quiet = true;
        else if (!strcmp(o, "-v") || !strcmp(o, "--verbose")) log_set_level(LOG_LEVEL_INFO);
        else if (!strcmp(o, "-h") || !strcmp(o, "--help")) want_help = true;
        else if (!strcmp(o, "--version")) return cmd_version(&a);
        else {
            fprintf(stderr, "tailor: unknown option '%s' before the command; 'tailor --help' lists them\n", o);
            return EX_USAGE;
        }
    }
    if (i >= argc) {
        print_overview(want_help ? stdout : stderr, "");
        return want_help ? EX_OK : EX_USAGE;
    }
    int words = 0;
    const cli_cmd *cmd = find_command(argc, argv, i, &words);
    if (!cmd) {
        if (is_group(argv[i])) {
            bool h = want_help || (i + 1 < argc && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h")));
            if (!h && i + 1 < argc)
                fprintf(stderr, "tailor: no command '%s %s'\n\n", argv[i], argv[i + 1]);
            print_overview(h ? stdout : stderr, argv[i]);
            return h ? EX_OK : EX_USAGE;
        }
        fprintf(stderr, "tailor: no command '%s'; 'tailor --help' lists them\n", argv[i]);
        return EX_USAGE;
    }
    a.cmd = cmd;

    /* getopt_long over the command's options plus the global ones. */
    size_t nopts = cmd_nopts(cmd);
    struct option longopts[CLI_MAX_OPTS + NGLOBAL + 1];
    /* "-": positionals come back in order as option 1; ":": a missing
     * value is reported as ':'. */
    char shorts[2 * (CLI_MAX_OPTS + NGLOBAL) + 3] = "-:";
    size_t sl = 2;
    size_t n = 0;
    for (size_t k = 0; k < nopts; k++, n++) {
        longopts[n] = (struct option){cmd->opts[k].name, cmd->opts[k].arg ? required_argument : no_argument,
                                      NULL, 1000 + (int)k};
        if (cmd->opts[k].short_name) {
            shorts[sl++] = cmd->opts[k].short_name;
            if (cmd->opts[k].arg) shorts[sl++] = ':';
        }
    }
    for (size_t k = 0; k < NGLOBAL; k++, n++) {
        longopts[n] = (struct option){GLOBAL_OPTS[k].name,
                                      GLOBAL_OPTS[k].arg ? required_argument : no_argument, NULL,
                                      2000 + (int)k};
        if (GLOBAL_OPTS[k].short_name) shorts[sl++] = GLOBAL_OPTS[k].short_name;
    }
    longopts[n] = (struct option){0};
    shorts[sl] = 0;

    int sub_argc = argc - i - words + 1;
    char **sub_argv = xmalloc(((size_t)sub_argc + 1) * sizeof *sub_argv);
    sub_argv[0] = argv[0];
    for (int k = 1; k < sub_argc; k++) sub_argv[k] = argv[i + words + k - 1];
    sub_argv[sub_argc] = NULL;
    a.pos = xmalloc(((size_t)sub_argc + 1) * sizeof *a.pos);
    opterr = 0;
    optind = 1;
    int c, rc = EX_OK;
    while ((c = getopt_long(sub_argc, sub_argv, shorts, longopts, NULL)) != -1) {
        /* Short options come back as their letter: map them to the same
         * codes as their long names. */
        if (c > 1 && c < 256 && c != '?' && c != ':') {
            for (size_t k = 0; k < nopts; k++)
                if (cmd->opts[k].short_name == c) c = 1000 + (int)k;
            for (size_t k = 0; k < NGLOBAL && c < 256; k++)
                if (GLOBAL_OPTS[k].short_name == c) c = 2000 + (int)k;
        }
        if (c == 1) {
            a.pos[a.npos++] = optarg;
        } else if (c >= 2000) {
            const char *g = GLOBAL_OPTS[c - 2000].name;
            if (!strcmp(g, "db")) a.db_path = optarg;
            else if (!strcmp(g, "quiet")) a.quiet = true;
            else if (!strcmp(g, "verbose")) log_set_level(LOG_LEVEL_INFO);
            else if (!strcmp(g, "help")) want_help = true;
        } else if (c >= 1000) {
            int k = c - 1000;
            a.values[k] = optarg ? optarg : "1";
            if (a.nmulti[k] < 32) a.multi[k][a.nmulti[k]++] = a.values[k];
        } else {
            const char *bad = sub_argv[optind - 1];
            rc = cli_usage_error(&a, c == ':' ? "option '%s' needs a value" : "unknown option '%s'",
                                 bad);
            goto done;
        }
    }
    if (want_help) {
        print_cmd_help(stdout, cmd);
        goto done;
    }
    if (a.npos < cmd->min_pos || a.npos > cmd->max_pos) {
        rc = cli_usage_error(&a, a.npos < cmd->min_pos ? "missing %s" : "too many arguments%s",
                             a.npos < cmd->min_pos ? cmd->usage : "");
        goto done;
    }
    progress_set_quiet(a.quiet);
    a.files = store_files_base(a.db_path);
    rc = cmd->handler(&a);
done:
    free(a.files);
    free(sub_argv);
    free(a.pos);
    return rc;
}
