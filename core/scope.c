/* The system-prompt scope check (scope.h): reading restrictions out of
 * system text, and matching other texts against them.
 *
 * Everything here is word lists and a small tokeniser, on purpose: the
 * check runs on every request that has a system prompt, must be bounded on
 * hostile input, and must be explainable ("it flagged 'election' because
 * the system prompt forbids politics").  The lists are English and Chinese
 * (simplified and traditional), written for this project.
 *
 * Words: a Latin word is a run of ASCII letters and digits (with inner
 * hyphens and apostrophes, so "in-depth", "don't", "user's" are one word)
 * or of two-byte UTF-8 letters; it is lower-cased and stemmed (stem()).
 * Han text is not segmented: restrictions in Chinese become Han terms
 * (政治, 医疗) matched as substrings. */
#include "scope.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "error.h"

/* ==== Word lists ==== */

/* A list is one string of words separated by '|'; in_list compares a
 * lower-case word against it: one memmem over the list and a boundary
 * check at each place the word occurs.  That is the plain path (and the
 * definition): the parser asks the lists' table (classify, below), which
 * holds every list's words and gives a token all its lists at once. */
static int in_list(const char *list, const char *w, size_t n)
{
    if (!n)
        return 0;
    size_t ll = strlen(list);
    const char *p = list, *end = list + ll;
    while ((p = memmem(p, (size_t)(end - p), w, n))) {
        if ((p == list || p[-1] == '|') && (p + n == end || p[n] == '|'))
            return 1;
        p++;
    }
    return 0;
}

/* FNV-1a: the word tables' hash. */
static size_t hash(const char *s, size_t n)
{
    size_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Words that start a prohibition.  "not" covers do/does/should/must/may/
 * can/are not; "no" only in "under no circumstances". */
#define NEG_WORDS                                                                           \
    "never|not|don't|dont|doesn't|doesnt|shouldn't|shouldnt|mustn't|mustnt|can't|cant|cannot|" \
    "won't|wont|avoid|avoiding|refuse|refuses|decline|declines|refrain|forbidden|prohibited"

/* Markers that take an object without a verb ("avoid politics"). */
#define NEG_OBJ_WORDS "avoid|avoiding|refuse|refuses|decline|declines"

/* Between a negation and its verb. */
static const char FILLER[] =
    "to|you|you're|should|must|may|can|will|shall|ever|any|way|under|circumstances|circumstance|"
    "no|at|all|be|are|is|allowed|permitted|programmed|designed|supposed|meant|able|from|away|"
    "stay|please|also|directly|even|strictly|absolutely|try|attempt|willingly|voluntarily|"
    "proactively|yourself|engage|go|get|in|into|consciously|always|completely|totally|really|"
    "from|with|of|out|specifically|explicitly|openly|ever";

/* Verbs of talking about or handing over something. */
static const char VERBS[] =
    "discuss|discussing|discussed|discussion|discussions|talk|talking|speak|speaking|chat|"
    "chatting|mention|mentioning|bring|bringing|share|sharing|reveal|revealing|disclose|"
    "disclosing|divulge|divulging|provide|providing|give|giving|offer|offering|help|helping|"
    "assist|assisting|answer|answering|respond|responding|explain|explaining|describe|"
    "describing|write|writing|comment|commenting|cover|covering|touch|touching|recommend|"
    "recommending|teach|teaching|tell|telling|entertain|entertaining|do|doing|debate|"
    "debating|elaborate|elaborating|suggest|suggesting|leak|leaking|repeat|repeating|"
    "expose|exposing|output|print|spell|confirm";

/* Verbs after which the object's first action word is generic ("help with
 * changing a tire" is about the tire). */
static const char HELP_VERBS[] = "help|helping|assist|assisting";

/* Verbs of handing information over: a ban on these protects secrets and
 * personal details. */
static const char REVEAL_VERBS[] =
    "share|sharing|reveal|revealing|disclose|disclosing|divulge|divulging|provide|providing|"
    "give|giving|tell|telling|leak|leaking|repeat|repeating|expose|exposing|output|print|"
    "spell|confirm|discuss|discussing|mention|mentioning";

/* Not topics: function words, people in general, and generic nouns and
 * adjectives of restrictions ("technical topics", "in-depth discussions",
 * "medical advice" is about medicine). */
static const char STOP[] =
    "a|an|the|of|on|in|to|for|with|about|regarding|concerning|related|relating|around|into|at|"
    "by|from|as|any|all|some|every|this|that|these|those|your|you|yours|their|its|it|them|"
    "they|we|our|us|me|my|i|he|she|his|her|him|how|what|which|who|whom|when|where|why|"
    "whether|anything|something|everything|things|thing|stuff|lot|lots|kind|kinds|type|"
    "types|sort|form|forms|way|ways|such|more|most|than|very|really|just|also|even|only|"
    "either|neither|both|each|do|does|did|be|is|are|was|were|been|being|have|has|had|can|"
    "could|should|would|will|shall|may|might|must|not|no|never|etc|please|user|users|"
    "user's|users'|customer|customers|anyone|anybody|someone|people|person|topic|topics|"
    "subject|subjects|matter|matters|issue|issues|question|questions|queries|query|"
    "information|info|detail|details|discussion|discussions|conversation|conversations|"
    "content|contents|material|materials|advice|answer|answers|specific|certain|particular|"
    "general|various|sensitive|controversial|complex|complicated|technical|detailed|depth|"
    "in-depth|instructions|instruction|guidance|help|step|steps|task|tasks|guide|"
    "explanation|explanations|area|areas|field|fields|domain|sort|regard|involving|"
    "involve|anyway|whatsoever|whatever|else|further|here|there|so|too|one|ones|own|"
    "related|relevant|like|including|especially|particularly|e.g|eg|example|instance|"
    "deep-dive|deep-dives|advanced|serious|explicit|overly|detailed|thorough|extensive|"
    "contain|contains|containing|involving|featuring|use|using|opinion|opinions|view|views|"
    "thoughts|feelings|beliefs|preferences|personal|other|others|another";

/* The first action word of a how-to or help-with object that says
 * nothing of its own ("how to code in Python" is about Python).  Only in
 * those contexts: "programming languages" keeps its first word. */
static const char GENERIC_ACT[] =
    "do|doing|make|making|use|using|write|writing|code|coding|program|programming|create|"
    "creating|build|building|perform|performing|solve|solving|play|playing|change|changing|"
    "get|getting|handle|handling|fix|fixing|complete|completing|carry|carrying|work|working";

/* Words ending an object (the reason or the condition that follows). */
static const char END_WORDS[] =
    "because|since|so|but|unless|even|which|who|regardless|instead|whatever|whether|if|when|"
    "while|though|although|otherwise|therefore|however|nor";

/* "to <word>" ends an object when the word is one of these. */
static const char END_AFTER_TO[] =
    "maintain|ensure|keep|avoid|protect|prevent|stay|comply|focus|anyone|anybody|others|"
    "them|him|her|people|users|customers|strangers|third|outsiders|any";

/* In an object, these make a prohibition an allow-list in disguise ("do
 * not answer questions unrelated to trains"): such objects are skipped. */
static const char ALLOW_HINT[] = "unrelated|outside|except|besides|beyond|apart|else|off-topic";

/* Nouns of an answer's form.  A prohibition whose object ends in one
 * ("avoid long answers", "do not use emojis", "no markdown") says how to
 * answer, not what about: a user asking for a long answer, or about
 * emojis, asks for nothing it forbids. */
static const char FORM_WORDS[] =
    "answer|answers|response|responses|reply|replies|sentence|sentences|paragraph|paragraphs|"
    "emoji|emojis|emoticon|emoticons|markdown|jargon|slang|bullet|bullets|formatting|format|"
    "tone|apology|apologies|disclaimer|disclaimers|caveat|caveats|filler|preamble|length|"
    "exclamation|uppercase|capitals|headings";

/* "other" followed by one of these is "everything else" too. */
static const char OTHER_GENERIC[] =
    "topic|topics|subject|subjects|question|questions|thing|things|matters|areas|requests";

/* Secret nouns.  key, code and token need a modifier ("secret code"). */
#define SECRET_WORDS "password|passwords|passcode|passphrase|pin|passwort"
#define SECRET_WORDS2 "code|key|token|phrase|word|combination"
static const char SECRET_NOUN[] = SECRET_WORDS;
static const char SECRET_NOUN2[] = SECRET_WORDS2;

/* Every word a sentence needs for english_sentence or english_secrets to
 * find anything in it: sentences without one are skipped (most of a long
 * system prompt). */
static const char TRIGGER[] =
    NEG_WORDS "|allowed|permitted|acceptable|welcome|banned|off-limits|disallowed|off|no|stay|keep|"
    "keeps|" SECRET_WORDS "|" SECRET_WORDS2;
static const char SECRET_MOD[] =
    "secret|access|door|admin|master|security|safe|vault|api|wifi|wi-fi|unlock|entry|staff|pass";

/* Personal-information words in a ban ("private information about the
 * user") and the people such a ban protects. */
static const char PRIVATE_ADJ[] =
    "private|personal|confidential|sensitive|identifying|pii|personally|privacy";
static const char PRIVATE_NOUN[] =
    "information|info|details|detail|data|records|record|facts|particulars";
static const char REFERENT[] =
    "user|user's|customer|customer's|patient|patient's|client|client's|guest|guest's|member|"
    "member's|members|employee|employee's|employees|student|student's|students|caller|"
    "caller's|child|child's|staff|staff's";

/* Personal attributes, in groups: when the system text mentions any word
 * of a group, every word of the group becomes a protected attribute. */
#define ATTR_BORN "born|birth|birthday|birthdate|birthplace|age|old|dob"
#define ATTR_LIVE "live|lives|living|lived|address|home|reside|resides|residence|city|located|location"
#define ATTR_MAIL "email|e-mail|mail"
#define ATTR_PHONE "phone|telephone|mobile|cell|number"
#define ATTR_MONEY "balance|account|salary|income|bank"
#define ATTR_ID "ssn|social|passport|license"
#define ATTR_TASTE "color|colour|favorite|favourite"
#define ATTR_NAMES "name|initials|surname" /* ATTR_NAME: not an attribute of an object */
#define ATTR_WORK "school|job|work|works|employer"
#define NATTR 9     /* groups: L_ATTR .. L_ATTR + NATTR - 1 in the list table below */
#define ATTR_NAME 7 /* index of the name group: "do not share user names" is a topic */
static const char *const ATTR_GROUPS_HAN[] = {
    "生日|出生|年龄|年齡|几岁|幾歲",
    "住|地址|住址|哪里|哪裡|城市",
    "邮箱|郵箱|电子邮件|電子郵件|邮件|郵件",
    "电话|電話|手机|手機|号码|號碼",
    "余额|餘額|账户|帳戶|工资|薪水",
    "身份证|身分證|护照|護照",
    NULL
};

/* Han negations and verbs. */
static const char *const HAN_NEG[] = {
    "不要", "不得", "禁止", "请勿", "請勿", "切勿", "不能", "不可以", "不可", "不准",
    "不许", "不許", "严禁", "嚴禁", "避免", "拒绝", "拒絕", "绝不", "絕不", "决不", "決不",
    "不应该", "不應該", "不应", "不應", "别", "別", "勿", NULL
};
/* Han markers that take an object directly ("禁止赌博"). */
static const char *const HAN_NEG_OBJ[] = { "禁止", "严禁", "嚴禁", "避免", "拒绝", "拒絕", NULL };
static const char *const HAN_VERBS[] = {
    "讨论", "討論", "谈论", "談論", "谈及", "談及", "谈", "談", "聊", "提及", "提到", "涉及",
    "提供", "透露", "泄露", "洩露", "泄漏", "洩漏", "分享", "回答", "解答", "给出", "給出",
    "告诉", "告訴", "推荐", "推薦", "解释", "解釋", "介绍", "介紹", "评论", "評論", "说", "說", NULL
};
static const char *const HAN_REVEAL[] = {
    "透露", "泄露", "洩露", "泄漏", "洩漏", "分享", "告诉", "告訴", "提供", "说出", "說出", NULL
};
/* Skipped between a Han negation and its verb. */
static const char *const HAN_FILLER[] = {
    "在任何情况下", "在任何情況下", "任何时候", "任何時候", "向用户", "向用戶", "向使用者",
    "给用户", "給用戶", "对用户", "對用戶", "与用户", "與用戶", "和用户", "跟用户", "主动",
    "主動", "随意", "隨意", "直接", "再", "去", "和", "与", "與", "跟", NULL
};
/* Stripped from the front and the back of a Han object. */
static const char *const HAN_PRE[] = {
    "任何", "一切", "所有", "有关", "有關", "关于", "關於", "涉及", "与", "與", "跟", "和",
    "含有", "包含", "包括", "含", "的", "其他人的", "别人的", "別人的", "用户的", "用戶的",
    "使用者的", NULL
};
static const char *const HAN_POST[] = {
    "的话题", "的話題", "话题", "話題", "的问题", "的問題", "问题", "問題", "相关的内容",
    "相關的內容", "相关内容", "相關內容", "相关", "相關", "的内容", "的內容", "内容", "內容",
    "的信息", "的資訊", "信息", "資訊", "方面的", "方面", "等", "的建议", "的建議", "建议",
    "建議", "的事情", "事情", "的东西", "東西", "东西", "的", "给任何人", "給任何人",
    "给别人", "給別人", NULL
};
/* Han objects that are allow-lists in disguise (无关 = unrelated). */
static const char *const HAN_ALLOW[] = { "无关", "無關", "以外", "之外", "其他", "其它", NULL };
static const char *const HAN_SECRET[] = { "密码", "密碼", "口令", "密钥", "密鑰", "暗号", "暗號", NULL };
/* Asking words a Han secret name must come with ("管理员密码是多少"). */
static const char *const HAN_ASK[] = {
    "多少", "是什么", "是什麼", "告诉", "告訴", "给我", "給我", "说出", "說出", "透露", "提供",
    "是哪", "发给", "發給", "几", "幾", NULL
};
static const char *const HAN_PRIVATE[] = {
    "个人资料", "個人資料", "个人信息", "個人信息", "個人資訊", "隐私", "隱私", "私人信息",
    "私人資料", NULL
};
static const char *const HAN_NAME_CUE[] = {
    "资料：", "資料：", "姓名：", "姓名是", "名字是", "用户：", "用戶：", "使用者：", "客户：",
    "客戶：", "患者：", "病人：", "资料:", "資料:", "姓名:", NULL
};

/* The lexicon: related terms for common restricted subjects, written for
 * this project from general knowledge (not from any evaluation set).  An
 * entry applies to a topic whose words are all among its keys (after
 * stemming) or generic domain words (physics, science, opinion, ...), with
 * at least one key: "politics", "political opinions", "quantum physics",
 * "mathematical calculations".  Its related terms become alternatives of
 * the topic; a term of several words matches like a topic of several
 * words.  Keep it small: every term here can flag a question under a
 * system prompt that forbids its subject.  A term must mean the subject in
 * nearly every use: words with a common everyday sense (president, vote,
 * court, dish, portfolio, bet, doctor, treatment) are left out, since the
 * president of a company or a tennis court would then stand for politics
 * or law. */
typedef struct lex_entry {
    const char *keys;     /* '|'-separated words */
    const char *related;  /* '|'-separated terms; words of a term separated by ' ' */
} lex_entry;

static const lex_entry LEXICON[] = {
    { "politics|political|politician|政治",
      "election|elections|parliament|democracy|socialism|communism|political party|left-wing|"
      "right-wing|政治|政党|政黨|选举|選舉|总统|總統|议会|議會" },
    { "religion|religious|宗教",
      "religion|church|bible|quran|islam|christianity|buddhism|hinduism|judaism|theology|"
      "pray|prayer|宗教|信仰|佛教|基督教|道教|伊斯兰|伊斯蘭|神学|神學" },
    { "medical|medicine|medication|health|医疗|醫療|医学|醫學",
      "medication|medicine|drug|drugs|dose|dosage|diagnosis|symptom|symptoms|prescription|"
      "disease|antibiotic|painkiller|药物|藥物|吃药|吃藥|什么药|什麼藥|用药|用藥|"
      "处方|處方|诊断|診斷" },
    { "ai|artificial|intelligence|人工智能",
      "ai|artificial intelligence|machine learning|deep learning|neural network|language model|"
      "llm|llms|chatgpt|gpt|人工智能|机器学习|機器學習|神经网络|神經網路|神經網絡|大模型" },
    { "math|maths|mathematics|mathematical|calculation|calculations|arithmetic|数学|數學",
      "math|maths|mathematics|algebra|equation|calculus|arithmetic|geometry|trigonometry|"
      "polynomial|calculate|calculation|数学|數學|方程|计算|計算|代数|代數|几何|幾何" },
    { "quantum",
      "quantum|superposition|entanglement|qubit|量子" },
    { "recipe|recipes|cooking|食谱|食譜|菜谱|菜譜",
      "recipe|cook|cooking|bake|baking|ingredient|食谱|食譜|菜谱|菜譜|做法" },
    { "sport|sports|体育|體育|运动|運動",
      "sport|football|soccer|basketball|tennis|baseball|golf|olympic|olympics|world cup|"
      "nba|fifa|athlete|足球|篮球|籃球|网球|網球|奥运|奧運|联赛|聯賽" },
    { "gambling|gamble|betting|赌博|賭博",
      "gambling|casino|betting|poker|lottery|slot machine|roulette|赌博|賭博|赌场|賭場|彩票|下注" },
    { "cryptocurrency|cryptocurrencies|crypto|加密货币|加密貨幣",
      "cryptocurrency|crypto|bitcoin|ethereum|blockchain|nft|比特币|比特幣|虚拟货币|虛擬貨幣|区块链|區塊鏈" },
    { "stock|stocks|investing|investment|investments|financial|finance|股票|投资|投資|理财|理財",
      "stock market|share price|invest|investing|investment|dividend|股票|股市|投资|投資|基金" },
    { "legal|law|法律",
      "lawsuit|lawyer|attorney|legal advice|法律|律师|律師|起诉|起訴|诉讼|訴訟" },
    { "hacking|hack|黑客|駭客",
      "hack|hacking|exploit|malware|phishing|brute force|crack password|黑客|駭客|入侵|破解" },
    { "alcohol|alcoholic|酒精",
      "alcohol|wine|beer|rum|vodka|whisky|whiskey|liquor|cocktail|brandy|酒精|啤酒|葡萄酒|白酒|烈酒" },
    { "violence|violent|weapon|weapons|暴力|武器",
      "weapon|gun|guns|firearm|bomb|explosive|暴力|武器|枪|槍|炸弹|炸彈" },
};

/* Domain words that may stand beside a lexicon key ("quantum physics",
 * "political opinions"): they do not stop the entry applying. */
static const char LEX_DOMAIN[] =
    "physics|physical|science|sciences|scientific|theory|theories|opinion|opinions|view|views|"
    "advice|concept|concepts|news|matters|affairs|tips|issues|belief|beliefs|studies|study";

/* ==== The lists as one table ==== */

/* Every list above, and the inline ones of the parser, by number: a
 * token's membership in all of them is found with one lookup (classify)
 * instead of a search of each list where the parser asks (a sentence of a
 * system prompt asks some twenty lists about each of its words). */
#define WORD_LISTS(X)                                                                            \
    X(L_NEG, NEG_WORDS) X(L_NEG_OBJ, NEG_OBJ_WORDS) X(L_FILLER, FILLER) X(L_VERBS, VERBS)      \
    X(L_HELP_VERBS, HELP_VERBS) X(L_REVEAL_VERBS, REVEAL_VERBS) X(L_STOP, STOP)               \
    X(L_GENERIC_ACT, GENERIC_ACT) X(L_END_WORDS, END_WORDS) X(L_END_AFTER_TO, END_AFTER_TO)    \
    X(L_ALLOW_HINT, ALLOW_HINT) X(L_FORM_WORDS, FORM_WORDS) X(L_OTHER_GENERIC, OTHER_GENERIC) \
    X(L_SECRET_NOUN, SECRET_NOUN) X(L_SECRET_NOUN2, SECRET_NOUN2) X(L_TRIGGER, TRIGGER)       \
    X(L_SECRET_MOD, SECRET_MOD) X(L_PRIVATE_ADJ, PRIVATE_ADJ) X(L_PRIVATE_NOUN, PRIVATE_NOUN) \
    X(L_REFERENT, REFERENT)                                                                    \
    X(L_ATTR, ATTR_BORN) X(L_ATTR_LIVE, ATTR_LIVE) X(L_ATTR_MAIL, ATTR_MAIL)                   \
    X(L_ATTR_PHONE, ATTR_PHONE) X(L_ATTR_MONEY, ATTR_MONEY) X(L_ATTR_ID, ATTR_ID)              \
    X(L_ATTR_TASTE, ATTR_TASTE) X(L_ATTR_NAMES, ATTR_NAMES) X(L_ATTR_WORK, ATTR_WORK)          \
    X(L_PAIR_WITH, "anyone|anybody|others|them|him|her|people|users|customers|strangers|the|any") \
    X(L_PAIR_THAT, "are|is|could|would|might|may|can|will|should|seem|seems")                  \
    X(L_PAIR_UNDER, "any|no") X(L_PAIR_NO, "matter") X(L_PAIR_AT, "all|any")                  \
    X(L_PAIR_IN, "all|any|order|no")                                                           \
    X(L_PAIR_AS, "it|this|that|they|these|those|we|per|part|a|an|you")                         \
    X(L_RELATED, "related|relevant|connected") X(L_PROMPT, "prompt|prompts")                   \
    X(L_EXAMPLE_CUE, "like|including|especially|particularly|e.g|eg")                          \
    X(L_PART_SEP, "or|and|nor|&|like|including|especially|particularly|e.g|eg|incl")           \
    X(L_EXAMPLE, "example|instance") X(L_REL_PRONOUN, "which|who|whose")                      \
    X(L_YOU_PLEASE, "you|please")                                                              \
    X(L_CLAUSE_START, "to|as|under|no|at|in|even|you|please|this|it|which")                    \
    X(L_AND_CLAUSE,                                                                            \
      "you|then|instead|only|always|politely|stay|focus|redirect|never|do|don't|must|should")  \
    X(L_IS_ARE, "is|are")                                                                      \
    X(L_PASSIVE_ADV, "strictly|absolutely|completely|totally|also|therefore|generally")        \
    X(L_ALLOWED, "allowed|permitted|acceptable|welcome")                                       \
    X(L_BANNED, "forbidden|prohibited|banned|off-limits|disallowed")                           \
    X(L_LIMITS, "limits|topic") X(L_NEGATION, "not|never|don't|dont|no|shouldn't|mustn't")     \
    X(L_KEEP_PRIVATE, "private|secret|confidential|hidden")                                    \
    X(L_VERB_PARTICLE,                                                                         \
      "about|on|with|of|into|upon|up|out|in|regarding|to|the|any|anyone|users|user|them")      \
    X(L_IS_WAS_ARE, "is|was|are")                                                              \
    X(L_NOT_NAME, "keep|record|patient|customer|dear|mr|mrs|ms|dr|the|you")                    \
    X(L_NAME_AFTER, "born|lives|was|is|who")                                                   \
    X(L_NAME_AFTER_COMMA, "born|date|dob|age|aged|lives|who|he|she|email|phone")               \
    X(L_PLACE_PREP, "in|at|from|to|near")

#define LIST_ID(id, words) id,
#define LIST_WORDS(id, words) words,
/* After the word lists, lists of stems (looked up with a stemmed word):
 * the lexicon's keys per entry, its domain words, the secret nouns. */
enum { WORD_LISTS(LIST_ID) L_NWORD, L_LEX_DOMAIN = L_NWORD, L_SECRET_STEM, L_LEX, L_NLIST = L_LEX + 15 };
static const char *const LISTS[L_NWORD] = { WORD_LISTS(LIST_WORDS) };
_Static_assert(L_NLIST <= 128, "a token's list bits are two 64-bit words");
_Static_assert(L_ATTR_WORK == L_ATTR + NATTR - 1, "the attribute groups are consecutive");
_Static_assert(sizeof LEXICON / sizeof LEXICON[0] == L_NLIST - L_LEX, "a list per lexicon entry");

/* ==== Stemming ==== */

/* Does w[0..n) end in suf, of l bytes?  (Lengths are given: stem runs on
 * every word of every text, and measuring each suffix there showed up.) */
static int ends(const char *w, size_t n, const char *suf, size_t l)
{
    if (n < l)
        return 0;
    for (size_t i = 0; i < l; i++) /* a few bytes: cheaper than a call to memcmp */
        if (w[n - l + i] != suf[i])
            return 0;
    return 1;
}
#define ENDS(w, n, lit) ends(w, n, lit, sizeof lit - 1)

/* Light suffix stripping, the same for system and user words: plural
 * first, then one derivational suffix, then a final e, and a final y
 * written as i.  politics, political, politician -> politic; recipe,
 * recipes -> recip; calculate, calculations, calculating -> calcul;
 * movie, movies -> movi.  Not a real stemmer (no dictionary): it only has
 * to map both sides of a match to the same string. */
static size_t stem(char *w, size_t n)
{
    if (n >= 2 && w[n - 2] == '\'' && w[n - 1] == 's')
        n -= 2;
    else if (n >= 1 && w[n - 1] == '\'')
        n -= 1;
    if (n < 4)
        return n;
    if (ENDS(w, n, "ies") && n >= 5) {
        n -= 2; /* -ies -> -i */
    } else if (ENDS(w, n, "sses")) {
        n -= 2;
    } else if (w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
        n -= 1;
    }
    /* last: the suffix's last byte, so that most rules are passed over
     * without comparing */
#define RULE(suf, last, rep, min) { suf, rep, sizeof suf - 1, sizeof rep - 1, min, last }
    static const struct { const char *suf, *rep; unsigned char l, r, min; char last; } rules[] = {
        RULE("ically", 'y', "ic", 3), RULE("ations", 's', "", 4), RULE("ation", 'n', "", 4),
        RULE("ating", 'g', "", 4), RULE("ated", 'd', "", 4), RULE("ate", 'e', "", 4),
        RULE("ians", 's', "", 4), RULE("ian", 'n', "", 4), RULE("ical", 'l', "ic", 3),
        RULE("ious", 's', "", 4), RULE("ion", 'n', "", 4), RULE("ment", 't', "", 4),
        RULE("ness", 's', "", 4), RULE("ing", 'g', "", 3), RULE("ed", 'd', "", 3),
        RULE("er", 'r', "", 4), RULE("al", 'l', "", 4), RULE("ly", 'y', "", 4),
    };
#undef RULE
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        size_t l = rules[i].l;
        if (w[n - 1] == rules[i].last && ends(w, n, rules[i].suf, l) && n - l >= rules[i].min) {
            memcpy(w + n - l, rules[i].rep, rules[i].r);
            n = n - l + rules[i].r;
            break;
        }
    }
    if (n >= 4 && w[n - 1] == 'e')
        n--;
    if (n >= 4 && w[n - 1] == 'y')
        w[n - 1] = 'i';
    return n;
}

/* ==== Tokens ==== */

enum { T_WORD = 1, T_PUNCT, T_HAN };

typedef struct tok {
    size_t s, e;                /* byte span in the text */
    unsigned char kind;         /* T_* */
    unsigned char len;          /* bytes in low */
    unsigned char cap;          /* first letter upper-case (names) */
    char low[LG_SCOPE_WORD];    /* lower-case word (truncated), or the punctuation byte */
    unsigned long long m[2];    /* a word's lists (bit L_*), set by classify; extraction only */
} tok;

static size_t u8len(const unsigned char *p, size_t avail)
{
    size_t l = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
             : (p[0] & 0xF8) == 0xF0 ? 4 : 1;
    if (l > avail)
        return 1;
    for (size_t i = 1; i < l; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 1;
    return l;
}

static int is_han(const unsigned char *p, size_t l)
{
    if (l != 3 || (p[0] & 0xF0) != 0xE0 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
        return 0;
    unsigned cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF);
}

/* ASCII letters and digits, as a table: the tokenisers ask this of nearly
 * every byte of every text. */
#define AN(c) ((unsigned)(((c) | 32) - 'a') < 26u || (unsigned)((c) - '0') < 10u)
#define AN4(c) AN(c), AN((c) + 1), AN((c) + 2), AN((c) + 3)
#define AN16(c) AN4(c), AN4((c) + 4), AN4((c) + 8), AN4((c) + 12)
#define AN64(c) AN16(c), AN16((c) + 16), AN16((c) + 32), AN16((c) + 48)
static const unsigned char ALNUM[256] = { AN64(0), AN64(64), AN64(128), AN64(192) };
#undef AN64
#undef AN16
#undef AN4
#undef AN

static int alnum(unsigned char c)
{
    return ALNUM[c];
}

/* A two-byte UTF-8 letter (Latin-1 supplement to Cyrillic: é, ö, ç). */
static int letter2(const unsigned char *p, size_t l)
{
    return l == 2 && p[0] >= 0xC3 && p[0] <= 0xD3 && !(p[0] == 0xC3 && (p[1] == 0x97 || p[1] == 0xB7));
}

/* One step of a word that started at i: the bytes at j that continue it
 * (appended to low, lower-cased, while *k leaves room), or 0 where it
 * ends. */
static size_t word_step(const unsigned char *s, size_t n, size_t i, size_t j, char *low, size_t *k)
{
    if (j >= n)
        return 0;
    size_t m = u8len(s + j, n - j);
    if (m == 1 && alnum(s[j])) {
        if (*k < LG_SCOPE_WORD)
            low[(*k)++] = (char)(s[j] >= 'A' && s[j] <= 'Z' ? s[j] + 32 : s[j]);
        return 1;
    }
    if (letter2(s + j, m)) {
        if (*k + 2 <= LG_SCOPE_WORD) {
            low[(*k)++] = (char)s[j];
            low[(*k)++] = (char)s[j + 1];
        }
        return 2;
    }
    if (m == 1 && (s[j] == '\'' || s[j] == '-') && j + 1 < n && alnum(s[j + 1]) && j > i) {
        if (*k < LG_SCOPE_WORD)
            low[(*k)++] = (char)s[j];
        return 1;
    }
    if (m == 3 && s[j] == 0xE2 && s[j + 1] == 0x80 && s[j + 2] == 0x99 && j + 3 < n && alnum(s[j + 3])) {
        if (*k < LG_SCOPE_WORD)
            low[(*k)++] = '\'';                         /* don’t */
        return 3;
    }
    return 0;
}

/* The next token at or after *pos; 0 at the end.  Apostrophes (' and
 * U+2019) and hyphens between letters stay inside a word; quotes and other
 * punctuation are T_PUNCT tokens ('\'' for every quote, '.' for sentence
 * ends, ','), spaces separate, other bytes are skipped. */
/* The word that starts at i: its end, with its lower-case bytes in
 * low[0..*k) (truncated to LG_SCOPE_WORD).  A run of ASCII letters and
 * digits at a time (most of a word), then word_step for the bytes that
 * may continue it. */
static size_t word_body(const unsigned char *s, size_t n, size_t i, char *low, size_t *k)
{
    size_t j = i, step;
    for (;;) {
        while (j < n && alnum(s[j])) {
            if (*k < LG_SCOPE_WORD)
                low[(*k)++] = (char)(s[j] | 32); /* lower case; digits have the bit */
            j++;
        }
        /* only these bytes can continue a word past the run */
        if (j >= n || !(s[j] == '\'' || s[j] == '-' || s[j] >= 0x80) ||
            !(step = word_step(s, n, i, j, low, k)))
            return j;
        j += step;
    }
}

/* The punctuation token an ASCII byte makes, or 0. */
static char ascii_punct(unsigned char c)
{
    if (c == '.' || c == '!' || c == '?' || c == ';' || c == '\n')
        return '.';
    if (c == ',' || c == ':' || c == '(' || c == ')' || c == '-')
        return c == '-' ? '-' : c == ':' ? ':' : ',';
    if (c == '\'' || c == '"' || c == '`')
        return '\'';
    return 0;
}

/* The punctuation token a character of l bytes (l > 1) at s makes, or 0. */
static char wide_punct(const unsigned char *s, size_t l)
{
    if (l != 3)
        return 0;
    if (s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x98 || s[2] == 0x99 || s[2] == 0x9C || s[2] == 0x9D))
        return '\'';                                   /* ‘ ’ “ ” */
    if (s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x93 || s[2] == 0x94))
        return '-';                                    /* – — */
    if (s[0] == 0xE3 && s[1] == 0x80 && (s[2] == 0x82 || s[2] == 0x81))
        return s[2] == 0x82 ? '.' : ',';               /* 。 、 */
    if (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x81 || s[2] == 0x9F || s[2] == 0x9B))
        return '.';                                    /* ！ ？ ； */
    if (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x8C || s[2] == 0x9A))
        return ',';                                    /* ， ： */
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] >= 0x8C && s[2] <= 0x8F)
        return '\'';                                   /* 「 」 『 』 */
    return 0;
}

static int next_tok(const char *text, size_t n, size_t *pos, tok *t)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *pos;
    while (i < n) {
        size_t l = 1;
        char pc;
        if (s[i] < 0x80) {
            if (alnum(s[i]))
                break;
            pc = ascii_punct(s[i]);
        } else {
            l = u8len(s + i, n - i);
            if (letter2(s + i, l) || is_han(s + i, l))
                break;
            pc = wide_punct(s + i, l);
        }
        if (pc) {
            t->s = i;
            t->e = i + l;
            t->kind = T_PUNCT;
            t->low[0] = pc;
            t->len = 1;
            t->cap = 0;
            *pos = i + l;
            return 1;
        }
        i += l;
    }
    if (i >= n)
        return 0;
    size_t l = u8len(s + i, n - i);
    t->s = i;
    t->cap = s[i] >= 'A' && s[i] <= 'Z';
    if (is_han(s + i, l)) {
        t->kind = T_HAN;
        t->e = i + l;
        memcpy(t->low, s + i, l);
        t->len = (unsigned char)l;
        *pos = i + l;
        return 1;
    }
    t->kind = T_WORD;
    size_t k = 0;
    t->e = word_body(s, n, i, t->low, &k);
    t->len = (unsigned char)k;
    *pos = t->e;
    return 1;
}

static int tok_is(const tok *t, const char *w)
{
    size_t l = strlen(w);
    return t->kind == T_WORD && t->len == l && memcmp(t->low, w, l) == 0;
}

/* Is t a word of list id (L_*)? classify must have run on t. */
static int tok_in(const tok *t, int id)
{
    return t->kind == T_WORD && (t->m[id >> 6] >> (id & 63) & 1);
}

static int punct(const tok *t, char c)
{
    return t->kind == T_PUNCT && t->low[0] == c;
}

/* ==== Building restrictions ==== */

static int new_restr(lg_scope *sc, const char *what, size_t n)
{
    /* a restriction repeated word for word is the same restriction */
    for (size_t i = 0; i < sc->nrestr; i++)
        if (strlen(sc->what[i]) == n && memcmp(sc->what[i], what, n) == 0)
            return (int)i;
    if (sc->nrestr == LG_SCOPE_MAX_RESTR) {
        sc->dropped++;
        return LG_SCOPE_MAX_RESTR - 1; /* shares the last description */
    }
    size_t k = sc->nrestr++;
    size_t m = n < sizeof sc->what[k] - 1 ? n : sizeof sc->what[k] - 1;
    /* never cut inside a UTF-8 character */
    while (m > 0 && m < n && ((unsigned char)what[m] & 0xC0) == 0x80)
        m--;
    memcpy(sc->what[k], what, m);
    sc->what[k][m] = '\0';
    return (int)k;
}

static void set_word(lg_scope_word *w, const char *s, size_t n, int han)
{
    if (n > LG_SCOPE_WORD)
        n = LG_SCOPE_WORD;
    memcpy(w->s, s, n);
    w->len = (unsigned char)n;
    w->han = (unsigned char)han;
}

static int same_word(const lg_scope_word *a, const lg_scope_word *b)
{
    return a->len == b->len && a->han == b->han && memcmp(a->s, b->s, a->len) == 0;
}

static int same_phrase(const lg_scope_phrase *p, const lg_scope_word *w, size_t nw, int secret)
{
    if (p->nw != nw || p->secret != secret)
        return 0;
    size_t k = 0;
    while (k < nw && same_word(&p->w[k], &w[k]))
        k++;
    return k == nw;
}

static size_t phrase_hash(const lg_scope_word *w, size_t nw, int secret)
{
    size_t h = nw * 2 + (size_t)(secret != 0);
    for (size_t k = 0; k < nw; k++)
        h = h * 31 + hash(w[k].s, w[k].len) + w[k].han;
    return h;
}

/* Add a phrase unless an equal one is there already (a repeated
 * restriction is read once; the lexicon adds the same terms for
 * "politics" and "political opinions").  Returns 1 when added. */
static int add_phrase(lg_scope *sc, const lg_scope_word *w, size_t nw, int secret, int restr)
{
    if (!nw)
        return 0;
    /* the hash set is kept on both paths; the plain one scans instead */
    size_t slot = phrase_hash(w, nw, secret) & (LG_SCOPE_PHASH - 1);
    for (; sc->phash[slot]; slot = (slot + 1) & (LG_SCOPE_PHASH - 1))
        if (!sc->ref && same_phrase(&sc->ph[sc->phash[slot] - 1], w, nw, secret))
            return 0;
    for (size_t i = 0; sc->ref && i < sc->nph; i++)
        if (same_phrase(&sc->ph[i], w, nw, secret))
            return 0;
    if (sc->nph == LG_SCOPE_MAX_PHRASES) {
        sc->dropped++;
        return 0;
    }
    lg_scope_phrase *p = &sc->ph[sc->nph++];
    sc->phash[slot] = (unsigned short)sc->nph; /* terminates: PHASH > 2 * MAX_PHRASES */
    memset(p, 0, sizeof *p);
    for (size_t k = 0; k < nw && k < LG_SCOPE_MAX_WORDS; k++)
        p->w[k] = w[k];
    p->nw = (unsigned char)(nw < LG_SCOPE_MAX_WORDS ? nw : LG_SCOPE_MAX_WORDS);
    p->secret = (unsigned char)secret;
    p->restr = (unsigned char)restr;
    return 1;
}

/* Parse a lexicon term ("machine learning", "政治") into words. */
static size_t term_words(const char *t, size_t n, lg_scope_word *w)
{
    size_t nw = 0;
    const unsigned char *u = (const unsigned char *)t;
    if (n >= 3 && is_han(u, 3)) {
        set_word(&w[0], t, n, 1);
        return 1;
    }
    size_t i = 0;
    while (i < n && nw < LG_SCOPE_MAX_WORDS) {
        while (i < n && t[i] == ' ')
            i++;
        size_t j = i;
        while (j < n && t[j] != ' ')
            j++;
        if (j > i) {
            char b[LG_SCOPE_WORD];
            size_t l = j - i < sizeof b ? j - i : sizeof b;
            memcpy(b, t + i, l);
            l = stem(b, l);
            set_word(&w[nw++], b, l, 0);
        }
        i = j;
    }
    return nw;
}

/* ==== The lists' table ==== */

/* Is the table usable?  It is not on the plain path, nor when a list did
 * not fit (a word over LG_SCOPE_LEXW bytes, more than LG_SCOPE_LEX_WORDS
 * words): the lists are then searched as strings, as on the plain path. */
static int lex_ok(const lg_scope *sc)
{
    return !sc->ref && sc->lex_built && sc->nlex <= LG_SCOPE_LEX_WORDS;
}

static int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) /* short words: cheaper than a call to memcmp */
        if (a[i] != b[i])
            return 0;
    return 1;
}

static const lg_scope_lexword *lex_find(const lg_scope *sc, const char *s, size_t n)
{
    if (!n || n > LG_SCOPE_LEXW)
        return NULL;
    /* terminates: at most LG_SCOPE_LEX_WORDS of the slots are used */
    for (size_t i = hash(s, n) & (LG_SCOPE_LEX_SLOTS - 1);; i = (i + 1) & (LG_SCOPE_LEX_SLOTS - 1)) {
        unsigned e = sc->lex_slot[i];
        if (!e)
            return NULL;
        const lg_scope_lexword *w = &sc->lex[e - 1];
        if (w->len == n && same_bytes(w->s, s, n))
            return w;
    }
}

static int has_bit(const unsigned long long *m, int id)
{
    return (int)(m[id >> 6] >> (id & 63) & 1);
}

/* Put word s (of hash h) in list id.  0, or -1 when it does not fit. */
static int lex_add(lg_scope *sc, const char *s, size_t n, size_t h, int id)
{
    if (!n)
        return 0;
    if (n > LG_SCOPE_LEXW)
        return -1;
    size_t i = h & (LG_SCOPE_LEX_SLOTS - 1);
    lg_scope_lexword *w;
    for (;; i = (i + 1) & (LG_SCOPE_LEX_SLOTS - 1)) {
        unsigned e = sc->lex_slot[i];
        if (!e) {
            if (sc->nlex == LG_SCOPE_LEX_WORDS)
                return -1;
            w = &sc->lex[sc->nlex++];
            w->m[0] = w->m[1] = 0;
            memcpy(w->s, s, n);
            w->len = (unsigned char)n;
            sc->lex_slot[i] = (unsigned short)sc->nlex;
            break;
        }
        w = &sc->lex[e - 1];
        if (w->len == n && same_bytes(w->s, s, n))
            break;
    }
    w->m[id >> 6] |= 1ull << (id & 63);
    return 0;
}

/* Put the words of a '|'-separated list in list id: as written, or
 * (stems) as term_words reads them, which is how key_has compares a key
 * (Han keys are left to key_has's search).  0, or -1.  The table is built
 * on the first extract of every lg_scope, so this is kept to one pass
 * over the list's bytes. */
static int lex_add_list(lg_scope *sc, const char *list, int id, int stems)
{
    const char *p = list;
    for (;;) {
        size_t h = 2166136261u, l = 0; /* hash() as the bytes go by */
        while (p[l] && p[l] != '|') {
            h = (h ^ (unsigned char)p[l]) * 16777619u;
            l++;
        }
        lg_scope_word k[LG_SCOPE_MAX_WORDS];
        if (!stems) {
            if (lex_add(sc, p, l, h, id))
                return -1;
        } else if (term_words(p, l, k) == 1 && !k[0].han &&
                   lex_add(sc, k[0].s, k[0].len, hash(k[0].s, k[0].len), id)) {
            return -1;
        }
        if (!p[l])
            return 0;
        p += l + 1;
    }
}

/* Build the table: once per lg_scope (lg_scope_reset keeps it). */
static void lex_build(lg_scope *sc)
{
    memset(sc->lex_slot, 0, sizeof sc->lex_slot);
    sc->nlex = 0;
    int bad = 0;
    for (int id = 0; id < L_NWORD; id++)
        bad |= lex_add_list(sc, LISTS[id], id, 0);
    bad |= lex_add_list(sc, LEX_DOMAIN, L_LEX_DOMAIN, 1);
    bad |= lex_add_list(sc, SECRET_NOUN, L_SECRET_STEM, 1);
    for (int e = 0; e < L_NLIST - L_LEX; e++)
        bad |= lex_add_list(sc, LEXICON[e].keys, L_LEX + e, 1);
    if (bad)
        sc->nlex = LG_SCOPE_LEX_WORDS + 1;
    sc->lex_built = 1;
}

/* Set t->m: the word lists t is in. */
static void classify(const lg_scope *sc, tok *t)
{
    t->m[0] = t->m[1] = 0;
    if (t->kind != T_WORD)
        return;
    if (lex_ok(sc)) {
        const lg_scope_lexword *w = lex_find(sc, t->low, t->len);
        if (w) {
            t->m[0] = w->m[0];
            t->m[1] = w->m[1];
        }
        return;
    }
    for (int id = 0; id < L_NWORD; id++)
        if (in_list(LISTS[id], t->low, t->len))
            t->m[id >> 6] |= 1ull << (id & 63);
}

/* Is word w (stemmed, or Han) one of the '|'-separated keys (list id of
 * the table)?  A Han word also counts when it contains a Han key (股票投资
 * holds 股票): Chinese writes compounds without spaces. */
static int key_has(const lg_scope *sc, int id, const char *keys, const lg_scope_word *w)
{
    if (!w->han && lex_ok(sc)) {
        const lg_scope_lexword *e = lex_find(sc, w->s, w->len);
        return e && has_bit(e->m, id);
    }
    const char *p = keys;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        /* stemming keeps a word's first three bytes (shorter words are
         * not stemmed), so a key that differs there cannot match: most
         * keys are rejected without being stemmed */
        size_t pre = l < 3 ? l : 3;
        int maybe = w->han || (w->len >= pre && memcmp(p, w->s, pre) == 0);
        lg_scope_word k[LG_SCOPE_MAX_WORDS];
        if (maybe && term_words(p, l, k) == 1 &&
            (same_word(&k[0], w) || (w->han && k[0].han && memmem(w->s, w->len, k[0].s, k[0].len))))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* The lexicon entries word w is a key of (bit e), and whether it is a
 * domain word. */
static unsigned word_keys(const lg_scope *sc, const lg_scope_word *w, int *domain)
{
    unsigned keys = 0;
    if (!w->han && lex_ok(sc)) {
        const lg_scope_lexword *e = lex_find(sc, w->s, w->len);
        for (int k = 0; e && k < L_NLIST - L_LEX; k++)
            keys |= (unsigned)has_bit(e->m, L_LEX + k) << k;
        *domain = e && has_bit(e->m, L_LEX_DOMAIN);
        return keys;
    }
    for (int k = 0; k < L_NLIST - L_LEX; k++)
        keys |= (unsigned)key_has(sc, L_LEX + k, LEXICON[k].keys, w) << k;
    *domain = !w->han && key_has(sc, L_LEX_DOMAIN, LEX_DOMAIN, w);
    return keys;
}

static void add_lexicon(lg_scope *sc, const lg_scope_word *w, size_t nw, int restr)
{
    unsigned keys_of[LG_SCOPE_MAX_WORDS];
    int domain[LG_SCOPE_MAX_WORDS];
    for (size_t k = 0; k < nw; k++)
        keys_of[k] = word_keys(sc, &w[k], &domain[k]);
    for (size_t e = 0; e < sizeof LEXICON / sizeof LEXICON[0]; e++) {
        int keys = 0, ok = 1;
        for (size_t k = 0; k < nw && ok; k++) {
            if (keys_of[k] >> e & 1)
                keys++;
            else if (w[k].han || !domain[k])
                ok = 0;
        }
        if (!ok || !keys)
            continue;
        const char *p = LEXICON[e].related;
        while (*p) {
            const char *q = strchr(p, '|');
            size_t l = q ? (size_t)(q - p) : strlen(p);
            lg_scope_word tw[LG_SCOPE_MAX_WORDS];
            size_t tn = term_words(p, l, tw);
            add_phrase(sc, tw, tn, 0, restr);
            if (!q)
                break;
            p = q + 1;
        }
    }
}

/* A topic: its words (stemmed or Han), the phrase itself and its lexicon
 * alternatives.  A phrase whose last word is a secret's name ("password")
 * is a secret name: it must not follow "my" ("reset my password"). */
static void add_topic(lg_scope *sc, const lg_scope_word *w, size_t nw, int restr)
{
    if (!nw)
        return;
    int secret = 0;
    const lg_scope_word *last = &w[nw - 1];
    if (last->han) {
        for (size_t i = 0; HAN_SECRET[i]; i++)
            if (last->len >= strlen(HAN_SECRET[i]) &&
                memcmp(last->s + last->len - strlen(HAN_SECRET[i]), HAN_SECRET[i],
                       strlen(HAN_SECRET[i])) == 0)
                secret = 1;
    } else if (lex_ok(sc)) {
        const lg_scope_lexword *e = lex_find(sc, last->s, last->len);
        secret = e && has_bit(e->m, L_SECRET_STEM);
    } else {
        char b[LG_SCOPE_WORD + 1];
        for (const char *p = SECRET_NOUN; *p;) {
            const char *e = strchr(p, '|');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            memcpy(b, p, l);
            size_t sl = stem(b, l);
            if (sl == last->len && memcmp(b, last->s, sl) == 0)
                secret = 1;
            if (!e)
                break;
            p = e + 1;
        }
    }
    if (add_phrase(sc, w, nw, secret, restr) && !secret)
        add_lexicon(sc, w, nw, restr);
}

/* ==== English prohibitions ==== */

static int is_attr(const tok *t)
{
    for (int g = 0; g < NATTR; g++)
        if (g != ATTR_NAME && tok_in(t, L_ATTR + g))
            return 1;
    return 0;
}

/* Turn the object tokens o[0..no) of a prohibition into topics.
 * qualified: the object was cut before a relative clause ("code that is
 * insecure"); without a list of examples what is left would forbid more
 * than the prompt does, so it is dropped. */
static void english_object(lg_scope *sc, const tok *o, size_t no, int help_ctx, int passive,
                           int qualified)
{
    if (!no)
        return;
    int priv_adj = 0, priv_noun = 0, quote = 0, secret = 0, ref = 0, attr = 0, examples = 0, self = 0;
    for (size_t i = 0; i < no; i++) {
        if (tok_in(&o[i], L_ALLOW_HINT))
            return;
        if (tok_is(&o[i], "other") && i + 1 < no &&
            (tok_in(&o[i + 1], L_OTHER_GENERIC) || tok_is(&o[i + 1], "than")))
            return;
        if (tok_is(&o[i], "not") && i + 1 < no && tok_in(&o[i + 1], L_RELATED))
            return;
        self |= tok_in(&o[i], L_PROMPT);
        priv_adj |= tok_in(&o[i], L_PRIVATE_ADJ);
        priv_noun |= tok_in(&o[i], L_PRIVATE_NOUN);
        quote |= punct(&o[i], '\'');
        secret |= tok_in(&o[i], L_SECRET_NOUN) || tok_in(&o[i], L_SECRET_NOUN2);
        ref |= tok_in(&o[i], L_REFERENT);
        attr |= is_attr(&o[i]);
        examples |= tok_in(&o[i], L_EXAMPLE_CUE) ||
                    (tok_is(&o[i], "such") && i + 1 < no && tok_is(&o[i + 1], "as"));
    }
    /* "private information about the user", and "the user's address":
     * a person's details, judged by who and what together */
    if ((priv_adj && priv_noun) || (ref && attr)) {
        sc->person_ban = 1; /* the person is built at the end of lg_scope_extract */
        return;
    }
    /* the prompt itself ("your system prompt"): the injection pack's
     * extraction rules judge requests for it, with more care.  Only after
     * the person check: "personal information, including this prompt's"
     * still protects the person. */
    if (self)
        return;
    if (qualified && !examples)
        return;
    if (quote && secret)
        return; /* "the password 'X'": the secret reader has it */
    char what[48];
    size_t wl = 0;
    for (size_t i = 0; i < no && wl < sizeof what - 1; i++) {
        if (o[i].kind != T_WORD)
            continue;
        size_t l = o[i].len < sizeof what - 1 - wl - (wl ? 1 : 0) ? o[i].len : 0;
        if (!l)
            break;
        if (wl)
            what[wl++] = ' ';
        memcpy(what + wl, o[i].low, l);
        wl += l;
    }
    int restr = -1;
    /* Parts: split at commas, or, and, nor, /, such as, like, including. */
    size_t i = 0;
    while (i < no) {
        size_t j = i;
        int howto = 0;
        while (j < no && !punct(&o[j], ',') &&
               !tok_in(&o[j], L_PART_SEP) &&
               !(tok_is(&o[j], "such") && j + 1 < no && tok_is(&o[j + 1], "as")) &&
               !(tok_is(&o[j], "for") && j + 1 < no && tok_in(&o[j + 1], L_EXAMPLE))) {
            if (tok_is(&o[j], "how") && j + 1 < no && tok_is(&o[j + 1], "to"))
                howto = 1;
            j++;
        }
        lg_scope_word w[LG_SCOPE_MAX_WORDS];
        size_t nw = 0;
        int first_generic = 0, form = 0;
        for (size_t k = i; k < j; k++)
            if (o[k].kind == T_WORD && o[k].len && (tok_in(&o[k], L_FORM_WORDS) || !tok_in(&o[k], L_STOP)))
                form = tok_in(&o[k], L_FORM_WORDS); /* the part's last word that says something */
        for (size_t k = i; k < j && !form; k++) {
            const tok *t = &o[k];
            if (t->kind != T_WORD || !t->len || tok_in(t, L_STOP) || tok_in(t, L_VERBS))
                continue;
            if (nw == 0 && tok_in(t, L_GENERIC_ACT))
                first_generic = 1;
            if (nw == LG_SCOPE_MAX_WORDS)
                break;
            char b[LG_SCOPE_WORD];
            memcpy(b, t->low, t->len);
            size_t l = stem(b, t->len);
            set_word(&w[nw++], b, l, 0);
        }
        int ctx = howto || help_ctx || passive;
        if (first_generic && ctx && nw >= 2) {
            memmove(&w[0], &w[1], (nw - 1) * sizeof w[0]);
            nw--;
        }
        if (nw) {
            if (restr < 0)
                restr = new_restr(sc, what, wl);
            add_topic(sc, w, nw, restr);
        }
        i = j + 1;
        if (j < no && tok_is(&o[j], "such"))
            i = j + 2;
        else if (j < no && tok_is(&o[j], "for"))
            i = j + 2;
    }
}

/* Two-word sequences that end an object: the reason, the condition or the
 * audience follows ("to maintain focus", "under any circumstances", "with
 * anyone", "that are more suited ..."). */
static const struct { const char *w; int next; } END_PAIRS[] = {
    { "to", L_END_AFTER_TO }, { "with", L_PAIR_WITH }, { "that", L_PAIR_THAT },
    { "under", L_PAIR_UNDER }, { "no", L_PAIR_NO },    { "at", L_PAIR_AT },
    { "in", L_PAIR_IN },      { "as", L_PAIR_AS },
};

/* Where an object ends: the first token at or after i that closes it.
 * *qualified is set when a relative clause follows ("that is", "which",
 * "who"). */
static size_t object_end(const tok *t, size_t nt, size_t i, int *qualified)
{
    size_t start = i;
    *qualified = 0;
    for (; i < nt && i - start < 24; i++) {
        const tok *x = &t[i];
        if (tok_in(x, L_REL_PRONOUN))
            *qualified = 1;
        if (punct(x, '.') || punct(x, ':') || punct(x, '-') || x->kind == T_HAN ||
            tok_in(x, L_END_WORDS) || tok_in(x, L_YOU_PLEASE))
            return i;
        const tok *nx = i + 1 < nt ? &t[i + 1] : NULL;
        if (!nx)
            continue;
        for (size_t k = 0; k < sizeof END_PAIRS / sizeof END_PAIRS[0]; k++)
            if (tok_is(x, END_PAIRS[k].w) && tok_in(nx, END_PAIRS[k].next)) {
                *qualified = tok_is(x, "that");
                return i;
            }
        /* A comma ends it before a new clause; before "and <word>" only
         * when the word starts one ("and you", "and never"). */
        if (punct(x, ',') &&
            (tok_in(nx, L_END_WORDS) || tok_in(nx, L_CLAUSE_START) ||
             (tok_is(nx, "and") && i + 2 < nt &&
              tok_in(&t[i + 2], L_AND_CLAUSE))))
            return i;
    }
    return i;
}

/* Prohibitions in one sentence of English tokens. */
static void english_sentence(lg_scope *sc, const tok *t, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        const tok *x = &t[i];
        if (x->kind != T_WORD)
            continue;
        /* Passive: "<subject> is (strictly) not allowed / forbidden /
         * prohibited / off-limits". */
        if (tok_in(x, L_IS_ARE)) {
            size_t j = i + 1;
            while (j < nt && tok_in(&t[j], L_PASSIVE_ADV))
                j++;
            int hit = 0;
            size_t after = j;
            if (j + 1 < nt && tok_is(&t[j], "not") && tok_in(&t[j + 1], L_ALLOWED))
                hit = 1, after = j + 2;
            else if (j < nt && tok_in(&t[j], L_BANNED))
                hit = 1, after = j + 1;
            else if (j + 1 < nt && tok_is(&t[j], "off") && tok_in(&t[j + 1], L_LIMITS))
                hit = 1, after = j + 2;
            (void)after;
            if (hit) {
                size_t b = i;
                while (b > 0 && !punct(&t[b - 1], '.') && !punct(&t[b - 1], ',') &&
                       !punct(&t[b - 1], ':') && t[b - 1].kind != T_HAN)
                    b--;
                if (b < i && tok_is(&t[b], "and"))
                    b++;
                english_object(sc, t + b, i - b, 0, 1, 0);
            }
            continue;
        }
        int neg = tok_in(x, L_NEG);
        if (tok_is(x, "no") && i > 0 && tok_is(&t[i - 1], "under"))
            neg = 1;
        if (tok_is(x, "stay") && i + 2 < nt && tok_is(&t[i + 1], "away") && tok_is(&t[i + 2], "from"))
            neg = 2;
        if (tok_is(x, "keep") || tok_is(x, "keeps"))
            neg = 3;
        if (!neg)
            continue;
        /* "do not refuse to", "never avoid": a double negative permits */
        if (tok_in(x, L_NEG_OBJ)) {
            int dbl = 0;
            for (size_t k = i >= 3 ? i - 3 : 0; k < i; k++)
                dbl |= tok_in(&t[k], L_NEGATION);
            if (dbl)
                continue;
        }
        if (neg == 3) {
            /* "keep <x> private / secret / confidential": a reveal ban */
            size_t k = i + 1;
            int priv = 0;
            for (; k < nt && k < i + 12 && !punct(&t[k], '.'); k++)
                if (tok_in(&t[k], L_KEEP_PRIVATE))
                    priv = 1;
            if (priv) {
                sc->ban_reveal = 1;
                for (size_t m = i + 1; m < k; m++)
                    if (tok_in(&t[m], L_PRIVATE_ADJ) || tok_in(&t[m], L_PRIVATE_NOUN) || tok_in(&t[m], L_REFERENT))
                        sc->person_ban = 1;
            }
            continue;
        }
        size_t j = i + 1;
        if (neg == 2)
            j = i + 3;
        size_t skipped = 0;
        while (j < nt && skipped < 8 && (tok_in(&t[j], L_FILLER) || punct(&t[j], ',')) && !tok_in(&t[j], L_VERBS)) {
            j++;
            skipped++;
        }
        int help_ctx = 0;
        if (j < nt && tok_in(&t[j], L_VERBS)) {
            if (tok_in(&t[j], L_REVEAL_VERBS))
                sc->ban_reveal = 1;
            help_ctx = tok_in(&t[j], L_HELP_VERBS);
            j++;
            while (j < nt && tok_in(&t[j], L_VERB_PARTICLE))
                j++;
        } else if (!(tok_in(x, L_NEG_OBJ) || neg == 2)) {
            continue;
        } else {
            j = i + 1 + (neg == 2 ? 2 : 0);
        }
        int qualified;
        size_t e = object_end(t, nt, j, &qualified);
        for (size_t k = j; k + 1 < e; k++)
            if (tok_is(&t[k], "task") && tok_is(&t[k + 1], "of"))
                help_ctx = 1;
        english_object(sc, t + j, e - j, help_ctx, 0, qualified);
        i = e > i ? e - 1 : i;
    }
}

/* Secrets and names in one sentence. */
static void english_secrets(lg_scope *sc, const char *text, const tok *t, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        const tok *x = &t[i];
        int noun = tok_in(x, L_SECRET_NOUN);
        int noun2 = tok_in(x, L_SECRET_NOUN2) && i > 0 && tok_in(&t[i - 1], L_SECRET_MOD);
        if (!noun && !noun2)
            continue;
        /* The value: the next quoted run in the sentence, or after "is" a
         * word with a digit in it ("the door code is 4471"). */
        size_t vs = 0, ve = 0;
        for (size_t k = i + 1; k < nt && k < i + 8; k++) {
            if (punct(&t[k], '\'')) {
                size_t m = k + 1;
                while (m < nt && !punct(&t[m], '\'') && m < k + 6)
                    m++;
                if (m < nt && punct(&t[m], '\'') && m > k + 1) {
                    vs = t[k].e;
                    ve = t[m].s;
                }
                break;
            }
            if (tok_in(&t[k - 1], L_IS_WAS_ARE) && t[k].kind == T_WORD) {
                int digit = 0;
                for (size_t c = 0; c < t[k].len; c++)
                    digit |= t[k].low[c] >= '0' && t[k].low[c] <= '9';
                if (digit) {
                    vs = t[k].s;
                    ve = t[k].e;
                }
                break;
            }
        }
        if (ve <= vs || ve - vs > LG_SCOPE_VALUE || ve - vs < 3)
            continue;
        if (sc->npending == LG_SCOPE_MAX_VALUES) {
            sc->dropped++;
            continue;
        }
        lg_scope_value *v = &sc->pending[sc->npending];
        memcpy(v->s, text + vs, ve - vs);
        v->len = (unsigned char)(ve - vs);
        lg_scope_word *nw = sc->pending_noun[sc->npending];
        memset(nw, 0, 2 * sizeof *nw);
        char b[LG_SCOPE_WORD];
        if (noun2) {
            memcpy(b, t[i - 1].low, t[i - 1].len);
            set_word(&nw[0], b, stem(b, t[i - 1].len), 0);
            memcpy(b, x->low, x->len);
            set_word(&nw[1], b, stem(b, x->len), 0);
        } else {
            memcpy(b, x->low, x->len);
            set_word(&nw[0], b, stem(b, x->len), 0);
        }
        sc->npending++;
    }
}

/* Capitalised names: two or three capitalised words after "name is",
 * "name:", a record label ("Customer on this chat:", "Patient record:"),
 * or followed by ", born" / "born" / ", date of birth". */
static void english_names(lg_scope *sc, const tok *t, size_t nt)
{
    for (size_t i = 0; i + 1 < nt; i++) {
        if (!t[i].cap || !t[i + 1].cap || t[i].kind != T_WORD || t[i + 1].kind != T_WORD)
            continue;
        if (t[i].len < 2 || t[i + 1].len < 2 || tok_in(&t[i], L_STOP) || tok_in(&t[i], L_NEG) ||
            tok_in(&t[i], L_REFERENT) || tok_in(&t[i], L_NOT_NAME))
            continue;
        size_t e = i + 2;
        if (e < nt && t[e].cap && t[e].kind == T_WORD && !tok_in(&t[e], L_STOP))
            e++;
        int before = 0, after = 0;
        if (i >= 2 && tok_is(&t[i - 2], "name") && tok_is(&t[i - 1], "is"))
            before = 1;
        if (i >= 1 && punct(&t[i - 1], ':'))
            before = 1;
        if (i >= 1 && tok_in(&t[i - 1], L_REFERENT))
            before = 1;
        if (e < nt && tok_in(&t[e], L_NAME_AFTER))
            after = 1;
        if (e + 1 < nt && punct(&t[e], ',') && tok_in(&t[e + 1], L_NAME_AFTER_COMMA))
            after = 1;
        if (i >= 1 && tok_in(&t[i - 1], L_PLACE_PREP))
            continue; /* a place */
        if (!before && !after)
            continue;
        for (size_t k = i; k < e; k++) {
            if (sc->nnames == LG_SCOPE_PERSON_TERMS) {
                sc->dropped++;
                break;
            }
            char b[LG_SCOPE_WORD];
            memcpy(b, t[k].low, t[k].len);
            set_word(&sc->names[sc->nnames++], b, stem(b, t[k].len), 0);
        }
        i = e - 1;
    }
}

/* ==== Chinese prohibitions ==== */

static size_t starts_any(const char *s, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        size_t l = strlen(list[i]);
        if (l <= n && memcmp(s, list[i], l) == 0)
            return l;
    }
    return 0;
}

static size_t ends_any(const char *s, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        size_t l = strlen(list[i]);
        if (l < n && memcmp(s + n - l, list[i], l) == 0)
            return l;
    }
    return 0;
}

static int contains_any(const char *s, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (memmem(s, n, list[i], strlen(list[i])))
            return 1;
    return 0;
}

/* Length of the run of Han characters (and nothing else) at s. */
static size_t han_run(const char *s, size_t n)
{
    size_t i = 0;
    while (i + 3 <= n && is_han((const unsigned char *)s + i, 3))
        i += 3;
    return i;
}

/* One Han object part: strip the generic front and back, split at 的 into
 * words that must all occur (竞争对手的产品价格: 竞争对手 + 产品价格). */
static void han_part(lg_scope *sc, const char *s, size_t n, int *restr, const char *obj, size_t on)
{
    size_t l;
    for (int again = 1; again && n;) {
        again = 0;
        if ((l = starts_any(s, n, HAN_PRE)) && l < n) {
            s += l, n -= l, again = 1;
        }
        if ((l = ends_any(s, n, HAN_POST))) {
            n -= l, again = 1;
        }
    }
    lg_scope_word w[LG_SCOPE_MAX_WORDS];
    size_t nw = 0;
    static const char de[] = "的";
    while (n && nw < LG_SCOPE_MAX_WORDS) {
        const char *d = memmem(s, n, de, 3);
        size_t pl = d ? (size_t)(d - s) : n;
        if (pl >= 6) /* one character alone says too little */
            set_word(&w[nw++], s, pl, 1);
        if (!d)
            break;
        s = d + 3;
        n -= pl + 3;
    }
    if (!nw)
        return;
    if (*restr < 0)
        *restr = new_restr(sc, obj, on);
    add_topic(sc, w, nw, *restr);
}

/* Prohibitions in Han text: a negation, fillers, a verb (or an object
 * right after 禁止 / 避免 / 拒绝), and the object up to punctuation. */
static void han_text(lg_scope *sc, const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n;) {
        /* every Han negation starts with a three-byte character */
        if ((unsigned char)s[i] < 0xE0) {
            i++;
            continue;
        }
        size_t l = starts_any(s + i, n - i, HAN_NEG);
        if (!l) {
            i += u8len((const unsigned char *)s + i, n - i);
            continue;
        }
        int obj_ok = starts_any(s + i, n - i, HAN_NEG_OBJ) != 0;
        size_t j = i + l;
        /* a double negative (不要拒绝讨论) permits: skip both words */
        size_t dn = starts_any(s + j, n - j, HAN_NEG_OBJ);
        if (dn) {
            i = j + dn;
            continue;
        }
        size_t f;
        while ((f = starts_any(s + j, n - j, HAN_FILLER)))
            j += f;
        size_t v = starts_any(s + j, n - j, HAN_VERBS);
        if (v) {
            if (starts_any(s + j, n - j, HAN_REVEAL))
                sc->ban_reveal = 1;
            j += v;
            while ((f = starts_any(s + j, n - j, HAN_FILLER)))
                j += f;
        } else if (!obj_ok) {
            i = j;
            continue;
        }
        /* the object: Han characters and list separators up to other punctuation */
        size_t e = j;
        while (e < n) {
            size_t r = han_run(s + e, n - e);
            if (r) {
                e += r;
                continue;
            }
            if (n - e >= 3 && memcmp(s + e, "、", 3) == 0) {
                e += 3;
                continue;
            }
            break;
        }
        const char *obj = s + j;
        size_t on = e - j;
        if (contains_any(obj, on, HAN_PRIVATE)) {
            sc->person_ban = 1;
            i = e > i ? e : i + 3;
            continue;
        }
        if (on && !contains_any(obj, on, HAN_ALLOW)) {
            int restr = -1;
            /* parts: 、 和 或 及 与 以及 */
            static const char *const seps[] = { "、", "以及", "或者", "和", "或", "及", "与", "與", NULL };
            size_t a = 0;
            while (a < on) {
                size_t b = a;
                size_t sl = 0;
                while (b < on && !(sl = starts_any(obj + b, on - b, seps)))
                    b += u8len((const unsigned char *)obj + b, on - b);
                han_part(sc, obj + a, b - a, &restr, obj, on);
                a = b + sl;
                if (!sl)
                    break;
            }
        }
        i = e > i ? e : i + 3;
    }
}

/* Han secrets: 密码是“X” and names: 资料：王小明，... */
static void han_secrets(lg_scope *sc, const char *s, size_t n)
{
    for (size_t k = 0; HAN_SECRET[k]; k++) {
        const char *p = s, *end = s + n;
        size_t kl = strlen(HAN_SECRET[k]);
        while ((p = memmem(p, (size_t)(end - p), HAN_SECRET[k], kl))) {
            const char *q = p + kl;
            if (end - q >= 3 && memcmp(q, "是", 3) == 0)
                q += 3;
            if (end - q >= 1 && (*q == ':' || *q == ' '))
                q++;
            if (end - q >= 3 && memcmp(q, "：", 3) == 0)
                q += 3;
            static const char *const open[] = { "“", "「", "\"", "'", "‘", NULL };
            static const char *const close[] = { "”", "」", "\"", "'", "’", NULL };
            for (size_t o = 0; open[o]; o++) {
                size_t ol = strlen(open[o]);
                if ((size_t)(end - q) > ol && memcmp(q, open[o], ol) == 0) {
                    const char *vs = q + ol;
                    const char *ve = memmem(vs, (size_t)(end - vs), close[o], strlen(close[o]));
                    if (ve && ve - vs >= 3 && ve - vs <= LG_SCOPE_VALUE && sc->npending < LG_SCOPE_MAX_VALUES) {
                        lg_scope_value *v = &sc->pending[sc->npending];
                        memcpy(v->s, vs, (size_t)(ve - vs));
                        v->len = (unsigned char)(ve - vs);
                        lg_scope_word *nw = sc->pending_noun[sc->npending];
                        memset(nw, 0, 2 * sizeof *nw);
                        set_word(&nw[0], HAN_SECRET[k], kl, 1);
                        sc->npending++;
                    }
                    break;
                }
            }
            p += kl;
        }
    }
    for (size_t k = 0; HAN_NAME_CUE[k]; k++) {
        const char *p = s, *end = s + n;
        size_t cl = strlen(HAN_NAME_CUE[k]);
        while ((p = memmem(p, (size_t)(end - p), HAN_NAME_CUE[k], cl))) {
            const char *q = p + cl;
            size_t r = han_run(q, (size_t)(end - q));
            if (r >= 6 && r <= 12 && sc->nnames < LG_SCOPE_PERSON_TERMS)
                set_word(&sc->names[sc->nnames++], q, r, 1);
            p = q;
        }
    }
}

/* ==== Extraction ==== */

static void build_person(lg_scope *sc, const char *text, size_t n, int cjk);

_Static_assert(LG_SCOPE_PHASH > 2 * LG_SCOPE_MAX_PHRASES, "the phrase set is never full");
_Static_assert(LG_SCOPE_MAX_PHRASES < 0xFF, "phrase indexes are bytes, 0xFF ends a bucket");
_Static_assert(LG_SCOPE_MAX_PEOPLE * 2 <= 8, "lg_scope_uw.people has two bits per person");

void lg_scope_reset(lg_scope *sc)
{
    /* The counts and the phrase set are at the front; the tables behind
     * them are valid only below their counts, except the word table,
     * whose used slots are freed here: 64 KiB need not be cleared for
     * the few hundred bytes a request's system prompt fills. */
    for (size_t i = 0; i < sc->nuw; i++)
        sc->uw[sc->uw_used[i]].len = 0;
    memset(sc, 0, offsetof(lg_scope, pre));
}

void lg_scope_set_reference(lg_scope *sc, int on)
{
    if (sc)
        sc->ref = on != 0;
}

/* Any byte that can start a Han character (or any three-byte UTF-8
 * character)?  Without one the Han passes can find nothing: every Han word
 * they look for starts with such a byte. */
static int has_cjk(const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] >= 0xE0)
            return 1;
    return 0;
}

int lg_scope_any(const lg_scope *sc)
{
    return sc->nph || sc->npeople || sc->nval;
}

int lg_scope_extract(lg_scope *sc, const char *text, size_t n)
{
    if (!sc || (!text && n))
        return LG_E_INVAL;
    if (sc->finished)
        return LG_E_STATE;
    if (!sc->lex_built)
        lex_build(sc);
    size_t room = LG_SCOPE_SYS_MAX - sc->sys_read;
    if (n > room)
        n = room;
    sc->sys_read += n;
    /* Sentences of tokens: English is read per sentence (pieces of at most
     * LG_SCOPE_SENT_TOKENS), Han text per run between sentence ends. */
    tok t[LG_SCOPE_SENT_TOKENS];
    size_t nt = 0, pos = 0;
    int more = 1, trig = 0;
    while (more) {
        tok x;
        more = next_tok(text, n, &pos, &x);
        if (more)
            classify(sc, &x);
        int end = !more || (x.kind == T_PUNCT && x.low[0] == '.' && nt > 0);
        if (more && !end) {
            if (x.kind == T_HAN)
                continue; /* Han text is read below, from the bytes */
            t[nt++] = x;
        }
        if (more && !end && !trig && x.kind == T_WORD)
            trig = tok_in(&x, L_TRIGGER);
        if (end || nt == LG_SCOPE_SENT_TOKENS) {
            english_names(sc, t, nt);
            if (trig) {
                english_secrets(sc, text, t, nt);
                english_sentence(sc, t, nt);
            }
            nt = 0;
            trig = 0;
        }
    }
    int cjk = sc->ref || has_cjk(text, n);
    if (cjk) {
        han_text(sc, text, n);
        han_secrets(sc, text, n);
    }
    build_person(sc, text, n, cjk);
    return (int)sc->nrestr + (int)sc->nval + (int)sc->npeople;
}

/* ==== Word table ==== */

/* Slot of word s in the table: its slot, or (add) a new one; LG_SCOPE_UNIQ
 * when absent (or the table is half full). */
static size_t uw_slot(lg_scope *sc, const char *s, size_t n, int add)
{
    size_t i = hash(s, n) & (LG_SCOPE_UNIQ - 1);
    for (size_t k = 0; k < LG_SCOPE_UNIQ; k++, i = (i + 1) & (LG_SCOPE_UNIQ - 1)) {
        lg_scope_uw *u = &sc->uw[i];
        if (!u->len) {
            if (!add || sc->nuw >= LG_SCOPE_UNIQ / 2)
                return LG_SCOPE_UNIQ;
            memcpy(u->s, s, n);
            u->len = (unsigned char)n;
            sc->uw_used[sc->nuw++] = (unsigned short)i;
            return i;
        }
        if (u->len == n && memcmp(u->s, s, n) == 0)
            return i;
    }
    return LG_SCOPE_UNIQ;
}

static unsigned short word_id(lg_scope *sc, const lg_scope_word *w)
{
    if (w->han)
        return (unsigned short)LG_SCOPE_UNIQ;
    size_t s = uw_slot(sc, w->s, w->len, 1);
    if (s == LG_SCOPE_UNIQ)
        sc->dropped++;
    return (unsigned short)s;
}

static void add_terms(lg_scope_word *dst, unsigned char *nd, const char *list, int han)
{
    const char *p = list;
    while (*p && *nd < LG_SCOPE_PERSON_TERMS) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char b[LG_SCOPE_WORD];
        size_t bl = l < sizeof b ? l : sizeof b;
        memcpy(b, p, bl);
        if (!han)
            bl = stem(b, bl);
        lg_scope_word w;
        set_word(&w, b, bl, han);
        int dup = 0;
        for (size_t k = 0; k < *nd; k++)
            dup |= same_word(&dst[k], &w);
        if (!dup)
            dst[(*nd)++] = w;
        if (!e)
            break;
        p = e + 1;
    }
}

/* Does the system text (as words) mention any word of the group? */
static int text_mentions(const char *text, size_t n, const char *group, int han)
{
    if (han) {
        const char *p = group;
        while (*p) {
            const char *e = strchr(p, '|');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (memmem(text, n, p, l))
                return 1;
            if (!e)
                break;
            p = e + 1;
        }
        return 0;
    }
    size_t pos = 0;
    tok x;
    while (next_tok(text, n, &pos, &x))
        if (x.kind == T_WORD && in_list(group, x.low, x.len))
            return 1;
    return 0;
}

/* ==== The matcher's index ==== */

/* Bit of the prefilter for the first m bytes of a word, whose hash h
 * (pre_step over those bytes) is given. */
static unsigned pre_bit(unsigned h, size_t m)
{
    return (h + (unsigned)m * 0x9E37u) & (LG_SCOPE_PRE_BITS - 1);
}

static unsigned pre_step(unsigned h, unsigned char c)
{
    return h * 131u + c;
}

/* Can a word of the text, lower-cased as w[0..n), stem to a word of the
 * table?  stem() keeps the first three bytes of what it keeps (it changes
 * only bytes from the fourth on, and cuts), so the stem's first min(3,
 * its length) bytes are w's, and the table word has the same: a clear bit
 * for every such length rules the word out without stemming it. */
static int pre_maybe(const lg_scope *sc, const char *w, size_t n)
{
    unsigned h = 0;
    for (size_t m = 1; m <= 3 && m <= n; m++) {
        h = pre_step(h, (unsigned char)w[m - 1]);
        unsigned b = pre_bit(h, m);
        if ((sc->pre_lens >> m & 1) && (sc->pre[b >> 3] >> (b & 7) & 1))
            return 1;
    }
    return 0;
}

static unsigned han_pair_bit(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    return (u[0] & 15u) << 6 | (u[1] & 63u);
}

static unsigned han_bucket(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    return ((u[0] * 31u + u[1]) * 31u + u[2]) & (LG_SCOPE_HAN_HEADS - 1);
}

/* Index what lg_scope_match looks up per word or per character: the
 * prefilter, the phrases and people of each word of the table, and the
 * Han phrases by their first character. */
static void build_index(lg_scope *sc)
{
    memset(sc->pre, 0, sizeof sc->pre);
    sc->pre_lens = 0;
    for (size_t i = 0; i < sc->nuw; i++) {
        lg_scope_uw *u = &sc->uw[sc->uw_used[i]];
        size_t m = u->len < 3 ? u->len : 3;
        unsigned h = 0;
        for (size_t k = 0; k < m; k++)
            h = pre_step(h, (unsigned char)u->s[k]);
        unsigned b = pre_bit(h, m);
        sc->pre[b >> 3] |= (unsigned char)(1u << (b & 7));
        sc->pre_lens |= (unsigned char)(1u << m);
        u->people = 0;
        u->nphw = 0;
        u->ph0 = 0;
    }
    /* phrases per word, in phrase order: count, place, fill.  A phrase
     * with a word that did not get a slot never matches: left out. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sc->nph; i++) {
            const lg_scope_phrase *ph = &sc->ph[i];
            int full = !ph->w[0].han;
            for (size_t k = 0; k < ph->nw; k++)
                full &= ph->id[k] != LG_SCOPE_UNIQ;
            for (size_t k = 0; full && k < ph->nw; k++) {
                int seen = 0;
                for (size_t j = 0; j < k; j++)
                    seen |= ph->id[j] == ph->id[k];
                if (seen)
                    continue;
                lg_scope_uw *u = &sc->uw[ph->id[k]];
                if (pass)
                    sc->phw[u->ph0 + u->nphw] = (unsigned char)i;
                u->nphw++;
            }
        }
        if (pass)
            break;
        size_t at = 0;
        for (size_t i = 0; i < sc->nuw; i++) {
            lg_scope_uw *u = &sc->uw[sc->uw_used[i]];
            u->ph0 = (unsigned short)at;
            at += u->nphw;
            u->nphw = 0;
        }
    }
    for (size_t p = 0; p < sc->npeople; p++) {
        const lg_scope_person *pe = &sc->people[p];
        for (size_t k = 0; k < pe->nref; k++)
            if (pe->ref_id[k] != LG_SCOPE_UNIQ && !pe->ref[k].han)
                sc->uw[pe->ref_id[k]].people |= (unsigned char)(1u << (2 * p));
        for (size_t k = 0; k < pe->nattr; k++)
            if (pe->attr_id[k] != LG_SCOPE_UNIQ && !pe->attr[k].han)
                sc->uw[pe->attr_id[k]].people |= (unsigned char)(1u << (2 * p + 1));
    }
    memset(sc->han_pair, 0, sizeof sc->han_pair);
    memset(sc->han_head, 0xFF, sizeof sc->han_head);
    sc->nhan = 0;
    sc->han_short = 0;
    for (size_t i = 0; i < sc->nph; i++) {
        const lg_scope_word *w = &sc->ph[i].w[0];
        if (!w->han)
            continue;
        /* han_scan looks only at bytes that start a three-byte character */
        if (w->len < 3 || ((unsigned char)w->s[0] & 0xF0) != 0xE0)
            sc->han_short = 1;
        size_t j = sc->nhan++;
        sc->han_ph[j] = (unsigned char)i;
        if (sc->han_short)
            continue;
        unsigned pb = han_pair_bit(w->s);
        sc->han_pair[pb >> 3] |= (unsigned char)(1u << (pb & 7));
        unsigned b = han_bucket(w->s);
        sc->han_next[j] = sc->han_head[b];
        sc->han_head[b] = (unsigned char)j;
    }
}

void lg_scope_finish(lg_scope *sc)
{
    if (sc->finished)
        return;
    /* secret values count once something forbids revealing */
    if (sc->ban_reveal) {
        for (size_t i = 0; i < sc->npending; i++) {
            if (sc->nval == LG_SCOPE_MAX_VALUES) {
                sc->dropped++;
                break;
            }
            char what[48];
            size_t wl = 0;
            const lg_scope_word *nw = sc->pending_noun[i];
            for (size_t k = 0; k < 2 && nw[k].len; k++) {
                if (wl)
                    what[wl++] = ' ';
                memcpy(what + wl, nw[k].s, nw[k].len);
                wl += nw[k].len;
            }
            int restr = new_restr(sc, what, wl);
            sc->val[sc->nval] = sc->pending[i];
            sc->val[sc->nval].restr = (unsigned char)restr;
            sc->nval++;
            add_phrase(sc, nw, nw[1].len ? 2 : 1, 1, restr);
        }
    }
    sc->finished = 1;
    /* word ids for phrases and people */
    for (size_t i = 0; i < sc->nph; i++)
        for (size_t k = 0; k < sc->ph[i].nw; k++)
            sc->ph[i].id[k] = word_id(sc, &sc->ph[i].w[k]);
    for (size_t i = 0; i < sc->npeople; i++) {
        lg_scope_person *p = &sc->people[i];
        for (size_t k = 0; k < p->nref; k++)
            p->ref_id[k] = word_id(sc, &p->ref[k]);
        for (size_t k = 0; k < p->nattr; k++)
            p->attr_id[k] = word_id(sc, &p->attr[k]);
    }
    build_index(sc);
}

/* The protected person, once a system text bans revealing personal
 * information: the names seen so far, the usual referents (user,
 * customer, patient, ...) and every attribute group this system text
 * mentions.  Called at the end of each lg_scope_extract. */
static void build_person(lg_scope *sc, const char *text, size_t n, int cjk)
{
    if (!sc->person_ban || sc->npeople)
        return;
    lg_scope_person *p = &sc->people[0];
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < sc->nnames && p->nref < LG_SCOPE_PERSON_TERMS; i++)
        p->ref[p->nref++] = sc->names[i];
    add_terms(p->ref, &p->nref, REFERENT, 0);
    unsigned groups = 0; /* bit g: the text mentions attribute group g */
    if (lex_ok(sc)) {
        size_t pos = 0;
        tok x;
        while (next_tok(text, n, &pos, &x)) {
            classify(sc, &x);
            for (int g = 0; g < NATTR; g++)
                if (tok_in(&x, L_ATTR + g))
                    groups |= 1u << g;
        }
    } else {
        for (int g = 0; g < NATTR; g++)
            if (text_mentions(text, n, LISTS[L_ATTR + g], 0))
                groups |= 1u << g;
    }
    for (int g = 0; g < NATTR; g++)
        if (groups >> g & 1)
            add_terms(p->attr, &p->nattr, LISTS[L_ATTR + g], 0);
    for (size_t g = 0; cjk && ATTR_GROUPS_HAN[g]; g++)
        if (text_mentions(text, n, ATTR_GROUPS_HAN[g], 1))
            add_terms(p->attr, &p->nattr, ATTR_GROUPS_HAN[g], 1);
    if (!p->nattr)
        return;
    p->restr = (unsigned char)new_restr(sc, "personal information", 20);
    sc->npeople = 1;
}

/* ==== Matching ==== */

#define WINDOW 12     /* words within which a phrase's words must all occur */
#define PWINDOW 12    /* words between a person's name and a protected attribute */
#define HAN_WIN 45    /* bytes around a Han term its other words (or an asking word) must be in */
#define HAN_TRIES 256 /* occurrences of a Han term tried per text */

static int is_my(const char *w, size_t n)
{
    return (n == 2 && memcmp(w, "my", 2) == 0) || (n == 3 && memcmp(w, "own", 3) == 0) ||
           (n == 4 && memcmp(w, "mine", 4) == 0);
}

/* Han phrase: every word within HAN_WIN bytes of the first one's
 * occurrence; a secret name also needs an asking word near and no 我 just
 * before it. */
/* Words that hold a lexicon term without meaning its subject: Chinese
 * writes compounds without spaces, so 计算 (calculate) is inside 计算机
 * (computer) and 云计算 (cloud computing). */
static const char *const HAN_NOT_TERM[] = { "计算机", "計算機", "云计算", "雲計算", NULL };

/* Is the term w at s + at part of one of HAN_NOT_TERM's words? */
static int han_in_other_word(const lg_scope_word *w, const char *s, size_t n, size_t at)
{
    for (size_t k = 0; HAN_NOT_TERM[k]; k++) {
        const char *c = HAN_NOT_TERM[k], *in = memmem(c, strlen(c), w->s, w->len);
        size_t cl = strlen(c), d = in ? (size_t)(in - c) : 0;
        if (in && at >= d && at - d + cl <= n && memcmp(s + at - d, c, cl) == 0)
            return 1;
    }
    return 0;
}

/* Does the occurrence of ph's first word at s + at count? */
static int han_try(const lg_scope_phrase *ph, const char *s, size_t n, size_t at, lg_scope_hit *hit)
{
    size_t lo = at > HAN_WIN ? at - HAN_WIN : 0;
    size_t hi = at + ph->w[0].len + HAN_WIN < n ? at + ph->w[0].len + HAN_WIN : n;
    int ok = !han_in_other_word(&ph->w[0], s, n, at);
    for (size_t k = 1; k < ph->nw && ok; k++)
        ok = memmem(s + lo, hi - lo, ph->w[k].s, ph->w[k].len) != NULL;
    if (ok && ph->secret) {
        ok = contains_any(s + lo, hi - lo, HAN_ASK);
        size_t b = at > 15 ? at - 15 : 0;
        if (memmem(s + b, at - b, "我的", 6) || memmem(s + b, at - b, "自己", 6) ||
            memmem(s + b, at - b, "我們的", 9) || memmem(s + b, at - b, "我们的", 9))
            ok = 0;
    }
    if (ok) {
        hit->start = at;
        hit->end = at + ph->w[0].len;
        hit->restr = ph->restr;
    }
    return ok;
}

/* The plain search: each occurrence of the first word (left to right, not
 * overlapping, at most HAN_TRIES) until one counts. */
static int han_phrase(const lg_scope_phrase *ph, const char *s, size_t n, lg_scope_hit *hit)
{
    const char *p = s, *end = s + n;
    for (int tries = 0; tries < HAN_TRIES; tries++) {
        p = memmem(p, (size_t)(end - p), ph->w[0].s, ph->w[0].len);
        if (!p)
            return 0;
        if (han_try(ph, s, n, (size_t)(p - s), hit))
            return 1;
        p += ph->w[0].len;
    }
    return 0;
}

/* What the plain searches find, phrase after phrase (the first phrase
 * with an occurrence that counts wins), in one pass over the text for all
 * of them: at each byte that can start a Han phrase, the phrases starting
 * with its character are compared, each seeing the same occurrences as
 * its plain search would (han_from skips the overlapping ones, han_tries
 * counts).  A phrase after the best so far is not looked at again. */
static int han_scan(lg_scope *sc, const char *s, size_t n, lg_scope_hit *hit)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t j = 0; j < sc->nhan; j++) {
        sc->han_tries[j] = 0;
        sc->han_from[j] = 0;
    }
    size_t best = sc->nhan;
    for (size_t at = 0, step; at + 3 <= n && best; at += step) {
        /* eight bytes of ASCII at a time: no Han character starts there */
        while (at + 8 <= n) {
            unsigned long long w8;
            memcpy(&w8, s + at, 8);
            if (w8 & 0x8080808080808080ull)
                break;
            at += 8;
        }
        step = 1;
        if (at + 3 > n)
            break;
        /* Every first word starts with a three-byte character (build_index
         * sees to it).  After one, the next two bytes are continuation
         * bytes, which start nothing: the whole character is passed. */
        if ((u[at] & 0xF0) != 0xE0)
            continue;
        if ((u[at + 1] & 0xC0) == 0x80 && (u[at + 2] & 0xC0) == 0x80)
            step = 3;
        unsigned pb = han_pair_bit(s + at);
        if (!(sc->han_pair[pb >> 3] >> (pb & 7) & 1))
            continue;
        for (unsigned j = sc->han_head[han_bucket(s + at)]; j != 0xFF; j = sc->han_next[j]) {
            if (j >= best || at < sc->han_from[j] || sc->han_tries[j] >= HAN_TRIES)
                continue;
            const lg_scope_phrase *ph = &sc->ph[sc->han_ph[j]];
            size_t wl = ph->w[0].len;
            if (wl > n - at || ph->w[0].s[1] != s[at + 1] || ph->w[0].s[2] != s[at + 2] ||
                memcmp(s + at, ph->w[0].s, wl) != 0)
                continue;
            sc->han_tries[j]++;
            sc->han_from[j] = (unsigned)(at + wl);
            lg_scope_hit h;
            if (han_try(ph, s, n, at, &h)) {
                best = j;
                *hit = h;
            }
        }
    }
    return best < sc->nhan;
}

static int han_person(const lg_scope_person *pe, const char *s, size_t n, lg_scope_hit *hit)
{
    for (size_t r = 0; r < pe->nref; r++) {
        if (!pe->ref[r].han)
            continue;
        const char *p = s, *end = s + n;
        for (int tries = 0; tries < HAN_TRIES; tries++) {
            p = memmem(p, (size_t)(end - p), pe->ref[r].s, pe->ref[r].len);
            if (!p)
                break;
            size_t at = (size_t)(p - s);
            size_t lo = at > HAN_WIN ? at - HAN_WIN : 0;
            size_t hi = at + pe->ref[r].len + HAN_WIN < n ? at + pe->ref[r].len + HAN_WIN : n;
            for (size_t a = 0; a < pe->nattr; a++)
                if (pe->attr[a].han && memmem(s + lo, hi - lo, pe->attr[a].s, pe->attr[a].len)) {
                    hit->start = at;
                    hit->end = at + pe->ref[r].len;
                    hit->restr = pe->restr;
                    return 1;
                }
            p += pe->ref[r].len;
        }
    }
    return 0;
}

static int is_alnum_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* The first occurrence of w[0..m) in s[0..n) that is a whole word where w
 * starts or ends with a letter or digit: a password "Cat" is not in
 * "educational" or "indicate". */
static const char *find_word(const char *s, size_t n, const char *w, size_t m)
{
    const char *p = s, *end = s + n;
    int lb = is_alnum_byte((unsigned char)w[0]), rb = is_alnum_byte((unsigned char)w[m - 1]);
    while ((p = memmem(p, (size_t)(end - p), w, m))) {
        if ((!lb || p == s || !is_alnum_byte((unsigned char)p[-1])) &&
            (!rb || p + m == end || !is_alnum_byte((unsigned char)p[m])))
            return p;
        p++;
    }
    return NULL;
}

#define VALUE_SHORT 8 /* words in a text short enough to be a guess ("Is it flower?") */

static int ask_near(const char *text, size_t n, size_t s, size_t e);

/* Does the value's occurrence at text[s..e) stand for the secret?  A
 * value with a digit or a symbol ("Lotus-2290") does anywhere; one that is
 * an everyday word ("Book", "House") only in a text that asks for
 * something or in a short one, a guess: the password "Book" must not
 * block "this book is very interesting, translate it". */
static int value_in_context(const lg_scope_value *v, const char *text, size_t n, size_t s, size_t e)
{
    int letters = 1;
    for (size_t i = 0; i < v->len; i++)
        letters &= ((unsigned char)v->s[i] | 32) >= 'a' && ((unsigned char)v->s[i] | 32) <= 'z';
    if (!letters)
        return 1;
    size_t words = 0;
    for (size_t i = 0; i < n && words <= VALUE_SHORT; i++)
        words += is_alnum_byte((unsigned char)text[i]) &&
                 (i == 0 || !is_alnum_byte((unsigned char)text[i - 1]));
    return words <= VALUE_SHORT || ask_near(text, n, s, e);
}

/* A secret value anywhere as a word, as written or in another case, in
 * context (value_in_context; its first occurrence is judged). */
static int value_hit(const lg_scope_value *v, const char *s, size_t n, lg_scope_hit *hit)
{
    char var[3][LG_SCOPE_VALUE];
    if (!v->len)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->s[i];
        var[0][i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        var[1][i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        var[2][i] = (char)(i == 0 ? var[1][i] : var[0][i]);
    }
    const char *best = NULL;
    const char *p = find_word(s, n, v->s, v->len);
    best = p;
    for (int k = 0; k < 3; k++) {
        p = find_word(s, n, var[k], v->len);
        if (p && (!best || p < best))
            best = p;
    }
    if (!best)
        return 0;
    size_t at = (size_t)(best - s);
    if (!value_in_context(v, s, n, at, at + v->len))
        return 0;
    hit->start = at;
    hit->end = at + v->len;
    hit->restr = v->restr;
    return 1;
}

/* The next word at or after *pos: the next T_WORD token next_tok would
 * return, the others skipped (matching looks at words only).  The same
 * bytes make the same word; what differs is speed: ASCII, most of a text,
 * is looked up in a table instead of being measured as UTF-8.  Sets s, e,
 * len, low and kind. */
static int next_word(const char *text, size_t n, size_t *pos, tok *t)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *pos;
    /* A word starts at an ASCII letter or digit, or at a two-byte letter;
     * nothing inside a multi-byte character is either, so stepping a byte
     * at a time finds the starts next_tok finds stepping a character. */
    for (;; i++) {
        if (i >= n)
            return 0;
        unsigned char c = s[i];
        if (c < 0x80) {
            if (alnum(c))
                break;
        } else if (c >= 0xC3 && c <= 0xD3 && letter2(s + i, u8len(s + i, n - i))) {
            break;
        }
    }
    size_t k = 0, j = word_body(s, n, i, t->low, &k);
    t->kind = T_WORD;
    t->s = i;
    t->e = j;
    t->len = (unsigned char)k;
    *pos = j;
    return 1;
}

/* A fixed list of short words with their lengths, so that a lookup, which
 * runs for every word of every checked text, measures nothing. */
struct short_word {
    char s[12];      /* the word, NUL-padded */
    unsigned char n; /* its length */
};
#define SW(w) { w, sizeof(w) - 1 }

static int in_short_words(const struct short_word *l, size_t nl, const char *w, size_t n)
{
    for (size_t i = 0; i < nl; i++)
        if (l[i].n == n && memcmp(l[i].s, w, n) == 0)
            return 1;
    return 0;
}

#define ASK_BEFORE 80 /* bytes before a secret's name an asking word may start in */
#define ASK_AFTER 60  /* bytes after it */

/* Words that ask for a secret or for something made of it ("what is the
 * password", "confirm the password", "write a poem about the password"). */
static int is_ask(const char *w, size_t n)
{
    static const struct short_word ask[] = {
        SW("what"), SW("what's"), SW("whats"), SW("which"), SW("tell"), SW("reveal"), SW("give"),
        SW("share"), SW("say"), SW("spell"), SW("print"), SW("show"), SW("repeat"),
        SW("disclose"), SW("divulge"), SW("provide"), SW("output"), SW("display"), SW("type"),
        SW("write"), SW("send"), SW("confirm"), SW("hint"), SW("guess"), SW("remind"), SW("know"),
        SW("need"), SW("want"), SW("forgot"), SW("forget"), SW("list"), SW("enter"), SW("expose"),
        SW("recite"), SW("translate"), SW("encode"), SW("reverse"), SW("complete"), SW("leak"),
        SW("read"), SW("hand"), SW("access"), SW("unlock") };
    return in_short_words(ask, sizeof ask / sizeof *ask, w, n);
}

/* Is there an asking word (is_ask) near text[s..e)?  Secret names are
 * everyday words ("how do I create a secure password?", "password
 * security"): under a prompt that guards a password, only a text that
 * asks for one counts. */
static int ask_near(const char *text, size_t n, size_t s, size_t e)
{
    size_t i = s > ASK_BEFORE ? s - ASK_BEFORE : 0, end = e + ASK_AFTER < n ? e + ASK_AFTER : n;
    while (i < end) {
        while (i < end && !is_alnum_byte((unsigned char)text[i]))
            i++;
        size_t b = i;
        char w[12];
        while (i < n && (is_alnum_byte((unsigned char)text[i]) || text[i] == '\''))
            i++;
        size_t l = i - b;
        if (l && l < sizeof w && (b < s || b >= e)) {
            for (size_t k = 0; k < l; k++)
                w[k] = (char)((unsigned char)text[b + k] | (text[b + k] >= 'A' && text[b + k] <= 'Z' ? 32 : 0));
            if (is_ask(w, l))
                return 1;
        }
    }
    return 0;
}

/* Does phrase ph match now, at word wi (token x) of text[0..n)? */
static int phrase_at(const lg_scope *sc, const lg_scope_phrase *ph, size_t wi, const tok *x,
                     const size_t prev[3], const char *text, size_t n, lg_scope_hit *hit)
{
    size_t lo = x->s;
    int ok = 1;
    for (size_t k = 0; k < ph->nw && ok; k++) {
        if (ph->id[k] == LG_SCOPE_UNIQ) {
            ok = 0;
            break;
        }
        const lg_scope_uw *o = &sc->uw[ph->id[k]];
        ok = o->last && wi - o->last < WINDOW;
        if (ok && o->start < lo)
            lo = o->start;
    }
    if (ok && ph->secret && (prev[0] || prev[1] || prev[2] || !ask_near(text, n, lo, x->e)))
        ok = 0;
    if (ok) {
        hit->start = lo;
        hit->end = x->e;
        hit->restr = ph->restr;
    }
    return ok;
}

struct person_seen {
    size_t ref_last, attr_last;   /* 1 + word index of the last name or referent, attribute */
    size_t ref_start, attr_start; /* where they start ("Jane Smith" starts at Jane) */
};

/* Words that make the referent after them a particular one ("the user",
 * "this customer"), not anybody's ("the Samsung customer service" has a
 * word between). */
static int is_det(const char *w, size_t n)
{
    static const struct short_word det[] = { SW("the"), SW("this"), SW("that"), SW("these"),
                                             SW("those"), SW("your"), SW("our"), SW("their"),
                                             SW("his"), SW("her"), SW("its") };
    return in_short_words(det, sizeof det / sizeof *det, w, n);
}

/* Word wi (token x) is a name or referent (isref) or attribute (isattr)
 * of person pe: is one now near the other?  prev: the word before x
 * (lower case, prevn bytes; 0 none), asked whether it is a determiner
 * (is_det) only for a referent: the loops keep a pointer, not an answer.  A referent counts only as "the user" or "user's":
 * a customer-service address is nobody's in particular.  A name counts
 * only when the word is not a function word that stems like it ("does" is
 * not "Doe"). */
static int person_at(const lg_scope *sc, const lg_scope_person *pe, struct person_seen *ps,
                     int isref, int isattr, const char *prev, size_t prevn, size_t wi, const tok *x,
                     lg_scope_hit *hit)
{
    if (isref) {
        tok y = *x;
        classify(sc, &y);
        if (tok_in(&y, L_REFERENT))
            isref = is_det(prev, prevn) || memchr(y.low, '\'', y.len) != NULL;
        else if (tok_in(&y, L_STOP))
            isref = 0;
    }
    if (isref) {
        if (ps->ref_last + 1 != wi) /* "Jane Smith" starts at Jane */
            ps->ref_start = x->s;
        ps->ref_last = wi;
    }
    if (isattr) {
        ps->attr_last = wi;
        ps->attr_start = x->s;
    }
    if ((isref || isattr) && ps->ref_last && ps->attr_last && ps->ref_last != ps->attr_last &&
        (wi - ps->ref_last < PWINDOW) && (wi - ps->attr_last < PWINDOW)) {
        hit->start = ps->ref_start < ps->attr_start ? ps->ref_start : ps->attr_start;
        hit->end = x->e;
        hit->restr = pe->restr;
        return 1;
    }
    return 0;
}

/* The Latin words: the plain loop, every token stemmed and looked up,
 * every phrase and person asked. */
static int latin_plain(lg_scope *sc, const char *text, size_t n, lg_scope_hit *hit)
{
    for (size_t i = 0; i < LG_SCOPE_UNIQ; i++)
        sc->uw[i].last = 0;
    size_t pos = 0, wi = 0;
    size_t prev[3] = { 0, 0, 0 }; /* were the last three words "my"? (bit) */
    char prevw[LG_SCOPE_WORD];    /* the last word, lower case (prevn bytes) */
    size_t prevn = 0;
    struct person_seen ps[LG_SCOPE_MAX_PEOPLE] = { 0 };
    tok x;
    while (next_tok(text, n, &pos, &x)) {
        if (x.kind != T_WORD)
            continue;
        wi++;
        char b[LG_SCOPE_WORD];
        memcpy(b, x.low, x.len);
        size_t bl = stem(b, x.len);
        int mine = is_my(x.low, x.len);
        size_t slot = uw_slot(sc, b, bl, 0);
        if (slot != LG_SCOPE_UNIQ) {
            lg_scope_uw *u = &sc->uw[slot];
            u->last = (unsigned)wi;
            u->start = (unsigned)x.s;
            unsigned short id = (unsigned short)slot;
            for (size_t i = 0; i < sc->nph; i++) {
                const lg_scope_phrase *ph = &sc->ph[i];
                if (ph->w[0].han)
                    continue;
                int has = 0;
                for (size_t k = 0; k < ph->nw; k++)
                    has |= ph->id[k] == id;
                if (has && phrase_at(sc, ph, wi, &x, prev, text, n, hit))
                    return 1;
            }
            for (size_t p = 0; p < sc->npeople; p++) {
                const lg_scope_person *pe = &sc->people[p];
                int isref = 0, isattr = 0;
                for (size_t k = 0; k < pe->nref; k++)
                    isref |= pe->ref_id[k] == id && !pe->ref[k].han;
                for (size_t k = 0; k < pe->nattr; k++)
                    isattr |= pe->attr_id[k] == id && !pe->attr[k].han;
                if (person_at(sc, pe, &ps[p], isref, isattr, prevw, prevn, wi, &x, hit))
                    return 1;
            }
        }
        memcpy(prevw, x.low, sizeof prevw); /* fixed size: a few moves */
        prevn = x.len;
        prev[2] = prev[1];
        prev[1] = prev[0];
        prev[0] = (size_t)mine;
    }
    return 0;
}

/* The same, fast: words the prefilter rules out are not stemmed, and a
 * word of the table asks only its own phrases (uw.ph0) and people
 * (uw.people), in the same order. */
static int latin_fast(lg_scope *sc, const char *text, size_t n, lg_scope_hit *hit)
{
    for (size_t i = 0; i < sc->nuw; i++)
        sc->uw[sc->uw_used[i]].last = 0;
    size_t pos = 0, wi = 0;
    size_t prev[3] = { 0, 0, 0 };
    char prevw[LG_SCOPE_WORD];
    size_t prevn = 0;
    struct person_seen ps[LG_SCOPE_MAX_PEOPLE] = { 0 };
    tok x;
    while (next_word(text, n, &pos, &x)) {
        wi++;
        int mine = x.len >= 2 && x.len <= 4 && is_my(x.low, x.len);
        if (pre_maybe(sc, x.low, x.len)) {
            char b[LG_SCOPE_WORD];
            memcpy(b, x.low, x.len);
            size_t bl = stem(b, x.len);
            size_t slot = uw_slot(sc, b, bl, 0);
            if (slot != LG_SCOPE_UNIQ) {
                lg_scope_uw *u = &sc->uw[slot];
                u->last = (unsigned)wi;
                u->start = (unsigned)x.s;
                for (size_t k = u->ph0; k < (size_t)u->ph0 + u->nphw; k++)
                    if (phrase_at(sc, &sc->ph[sc->phw[k]], wi, &x, prev, text, n, hit))
                        return 1;
                for (size_t p = 0; u->people && p < sc->npeople; p++) {
                    int isref = u->people >> (2 * p) & 1, isattr = u->people >> (2 * p + 1) & 1;
                    if ((isref || isattr) &&
                        person_at(sc, &sc->people[p], &ps[p], isref, isattr, prevw, prevn, wi, &x, hit))
                        return 1;
                }
            }
        }
        memcpy(prevw, x.low, sizeof prevw); /* fixed size: a few moves */
        prevn = x.len;
        prev[2] = prev[1];
        prev[1] = prev[0];
        prev[0] = (size_t)mine;
    }
    return 0;
}

int lg_scope_match(lg_scope *sc, const char *text, size_t n, lg_scope_hit *hit)
{
    if (!sc || (!text && n) || !hit)
        return 0;
    if (!sc->finished)
        lg_scope_finish(sc);
    if (!lg_scope_any(sc) || !n)
        return 0;
    if (n > 0xFFFFFFFFu)
        n = 0xFFFFFFFFu; /* the word table's positions are 32-bit */
    for (size_t i = 0; i < sc->nval; i++)
        if (value_hit(&sc->val[i], text, n, hit))
            return 1;
    if (sc->ref || sc->han_short) {
        for (size_t i = 0; i < sc->nph; i++)
            if (sc->ph[i].w[0].han && han_phrase(&sc->ph[i], text, n, hit))
                return 1;
    } else if (sc->nhan && han_scan(sc, text, n, hit)) {
        return 1;
    }
    for (size_t i = 0; i < sc->npeople; i++)
        if (han_person(&sc->people[i], text, n, hit))
            return 1;
    if (!sc->nuw)
        return 0;
    return sc->ref ? latin_plain(sc, text, n, hit) : latin_fast(sc, text, n, hit);
}

/* ==== The engine's step ==== */

const lg_rule *lg_scope_rule(const lg_policy *p)
{
    if (!p || !p->scope)
        return NULL;
    for (size_t i = 0; i < p->nrules; i++)
        if (p->rules[i].scope)
            return &p->rules[i];
    return NULL;
}

/* The first encoded run of text (decode.h) whose decoded text matches:
 * what lg_scan_text does for the rules ("decode and rescan"), one level
 * deep.  *hit gets the run's span.  1 found, 0 none, or LG_E_NOMEM. */
static int match_decoded(lg_scope *sc, const char *text, size_t n, lg_scope_hit *hit)
{
    char *buf = malloc(LG_DECODE_OUT);
    if (!buf)
        return LG_E_NOMEM;
    lg_decode_iter it = { 0 };
    lg_decoded d;
    int found = 0;
    for (size_t runs = 0; !found && runs < LG_DECODE_RUNS &&
                          lg_decode_next(text, n, &it, &d, buf, LG_DECODE_OUT) == 1;
         runs++) {
        if (lg_scope_match(sc, buf, d.outlen, hit)) {
            hit->start = d.start;
            hit->end = d.end;
            found = 1;
        }
    }
    free(buf);
    return found;
}

int lg_scope_scan(const lg_policy *p, lg_scope *sc, unsigned role, unsigned flags,
                  const char *text, size_t n, lg_findings *f)
{
    const lg_rule *r = lg_scope_rule(p);
    if (!r || !sc || !(r->on & LG_ON_PROMPT) || (r->roles && !(r->roles & role)))
        return LG_ACT_ALLOW;
    lg_scope_hit h;
    int act;
    if (lg_scope_match(sc, text, n, &h)) {
        /* redact would replace the words that matched, which says nothing
         * the model could not read around: it is taken as log */
        act = !(flags & LG_SCAN_ENFORCE) ? LG_ACT_LOG : r->action == LG_ACT_REDACT ? LG_ACT_LOG : r->action;
    } else {
        int got = p->decode && lg_scope_any(sc) ? match_decoded(sc, text, n, &h) : 0;
        if (got <= 0)
            return got < 0 ? got : LG_ACT_ALLOW;
        /* as for the rules: in decoded text a block blocks, anything else
         * is only logged (the encoded text is never rewritten) */
        act = r->action == LG_ACT_BLOCK && (flags & LG_SCAN_ENFORCE) ? LG_ACT_BLOCK : LG_ACT_LOG;
    }
    int rc = lg_findings_add(f, r, h.start, h.end, act);
    return rc != LG_OK ? rc : act;
}
