"""Fixed vocabularies: a token is " " + one word, purely ``\\w+`` or purely ``[^\\w\\s]+``.

So a ``Whitespace`` pre-tokenizer makes exactly one piece of every simulated token.
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    return text.split()


EN = _words(
    """
the of and to in is that it for was on are as with be at by this have from or one had not
but what all were when we there can an your which their said if do will each about how up
out them then she many some so these would other into has more her two like him see time
could no make than first been its who now people my made over did down only way find use
may water long little very after words called just where most know model token stream
server latency request response prompt answer fast slow queue batch cache memory compute
network socket buffer event chunk parser metric window thread worker master client engine
kernel matrix vector tensor layer weight signal value index table record field number
system random simple quick brown fox jumps lazy dog alpha beta gamma delta epsilon zeta
theta kappa lambda sigma omega apple banana cherry grape lemon mango orange peach river
mountain forest ocean desert island valley city village garden bridge castle tower road
light dark green blue red yellow white black silver golden happy calm brave bright clever
gentle proud quiet swift wise north south east west spring summer autumn winter morning
evening night today tomorrow yesterday hello world python rust linux cloud data scale
"""
)

ZH = _words(
    """
你好 世界 模型 测试 服务器 令牌 数据 速度 延迟 并发 请求 响应 流式 输出 输入 学习 语言
计算 系统 网络 时间 问题 答案 今天 天气 中国 北京 上海 人工智能 机器 程序 代码 文本 生成
推理 吞吐量 用户 负载 性能 结果 ， 。 ！ ？ 、
"""
)

# Single code points only: variation selectors and ZWJ count as \w for the pre-tokenizer.
EMOJI = _words(
    """
😀 😂 🚀 🔥 🎉 👍 ❤ ✨ 🌍 🍕 🐍 💡 🤖 🎯 📈 🧠 🌟 🙂 😎 🥳 🦀 ⚡ ☕ 🎵 🌈 🍀 🐱 🚀🚀 🔥🎉
"""
)

# Punctuation, digits, accents and other scripts: exercises JSON escapes and UTF-8 widths.
EXTRA = _words(
    r"""
! ? ... , . ; : - ( ) [ ] { } " ' \ / $ % & # @ * + = < > ~ ^ | ` —
42 2024 3 0 café naïve über señor привет мир γειά ありがとう 日本 안녕 שלום سلام
"""
)

VOCABS: dict[str, tuple[str, ...]] = {
    "en": tuple(EN),
    "zh": tuple(ZH),
    "emoji": tuple(EMOJI),
    "mixed": tuple(EN[:40] + ZH[:15] + EMOJI + EXTRA),
}


def all_words() -> list[str]:
    """Every distinct word of every vocabulary, in a stable order."""
    return list(dict.fromkeys(w for words in VOCABS.values() for w in words))
