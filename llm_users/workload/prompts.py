"""Prompt sources: the seed's three prompt sets (our own texts), in English and Chinese.

``short`` (0) is one fixed short question, ``long`` (1) one fixed article of about 2,000
characters with an instruction to summarise it in about 200 words, ``random`` (2) a random
pick from four short questions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["PROMPT_TYPES", "PromptSource", "PromptsExhausted", "SeedPrompts", "Prompt"]

Prompt = str | list[dict[str, Any]]  # a plain prompt, or a list of chat messages

PROMPT_TYPES = {
    "0": "short",
    "1": "long",
    "2": "random",
    "short": "short",
    "long": "long",
    "random": "random",
}

_SHORT = {
    "en": "What is the boiling point of water at sea level, and why does it drop on a mountain?",
    "zh": "海平面上水的沸点是多少？为什么在高山上沸点会降低？",
}

_ARTICLE_EN = (
    "The harbour town of Vellmar spent most of the last century as a quiet fishing port, "
    "known mainly for its smoked herring and its stubborn winter fog. That changed eight "
    "years ago, when the regional council approved a plan to turn the disused shipyard on "
    "the northern quay into a research campus for marine energy. The first tenants were two "
    "university laboratories studying tidal turbines, followed by a start-up building "
    "floating platforms for offshore wind. Today more than nine hundred people work on the "
    "site, and the town's population has grown by a fifth. The transformation has not been "
    "painless. Rents near the harbour have doubled, and several families who had lived in "
    "the old terraces for generations have moved inland. Fishermen complain that test "
    "turbines anchored in the bay have closed off grounds they used for decades, and a local "
    "association has asked for a survey of how the machines affect fish stocks. The council "
    "argues that the campus has brought a new secondary school, a rebuilt railway station and "
    "a ferry link that runs all year instead of only in summer. Supporters point out that "
    "young people who once left for the capital now find skilled jobs at home. The next "
    "phase is the most ambitious: a demonstration array of forty tidal turbines in the strait "
    "beyond the headland, which engineers say could supply the electricity of sixty thousand "
    "homes. Construction depends on a national grant that will be decided in the spring. "
    "Environmental groups are divided. Some welcome a steady source of clean power that does "
    "not depend on the weather; others fear for the seals that breed on the rocks near the "
    "strait and want the array moved further out, which would raise its cost by a third. At "
    "a public meeting last month, the mayor promised that no decision would be taken before "
    "an independent study of the seal colony is published. She also announced a fund, paid "
    "for by the campus tenants, to help long-time residents with rising rents. Whether that "
    "is enough to keep the town united remains to be seen, but few doubt that Vellmar has "
    "already become a different place from the fog-bound port it was a generation ago."
)

_ARTICLE_ZH = (
    "临海小城青湾在上个世纪的大部分时间里只是一个安静的渔港，以熏鱼和冬季浓雾闻名。八年前，"
    "地区议会批准了一项计划，把北码头废弃的造船厂改建为海洋能源研究园区，情况从此发生了变化。"
    "最早入驻的是两所大学研究潮汐涡轮机的实验室，随后是一家制造海上风电浮动平台的初创公司。"
    "如今园区里有九百多人工作，小城人口增长了五分之一。转变并非毫无代价。港口附近的房租翻了一倍，"
    "几户世代居住在老街的人家已经搬往内陆。渔民抱怨停泊在海湾里的试验涡轮机占用了他们几十年来"
    "捕鱼的海域，当地一个协会要求调查这些机器对鱼群的影响。议会则表示，园区带来了一所新中学、"
    "一座重建的火车站以及全年运营而不只在夏季开通的渡轮航线。支持者指出，过去去首都谋生的年轻人"
    "现在可以在家乡找到技术岗位。下一阶段最为宏大：在岬角外的海峡中建设由四十台潮汐涡轮机组成的"
    "示范阵列，工程师称其发电量可满足六万户家庭的用电。工程能否开工取决于春季将要决定的一笔国家"
    "拨款。环保团体意见不一。一些人欢迎这种不受天气影响的稳定清洁能源，另一些人则担心在海峡附近"
    "礁石上繁殖的海豹，希望把阵列移到更远的海域，但那会让成本提高三分之一。在上个月的公开会议上，"
    "市长承诺在一项关于海豹种群的独立研究发表之前不会作出任何决定。她还宣布设立一项由园区企业出资"
    "的基金，帮助老居民应对不断上涨的房租。这些措施是否足以让小城保持团结还有待观察，但很少有人"
    "怀疑，青湾已经不再是一代人之前那个被浓雾笼罩的渔港了。随着新居民的到来，小城的街道上出现了"
    "咖啡馆、书店和夜校，老人们在码头边讨论涡轮机的噪音，孩子们则在学校里学习潮汐的原理。"
)

_LONG = {
    "en": _ARTICLE_EN + "\n\nSummarise the article above in about 200 words.",
    "zh": _ARTICLE_ZH + "\n\n请用大约200字概括上面这篇文章。",
}

_RANDOM = {
    "en": (
        "Name three ways to keep bread fresh for longer.",
        "Why is the sky blue during the day and red at sunset?",
        "Explain in two sentences what a hash table is.",
        "What should I pack for a three-day hike in the mountains?",
    ),
    "zh": (
        "请列举三种让面包保持新鲜更久的方法。",
        "为什么白天的天空是蓝色的，而日落时是红色的？",
        "请用两句话解释什么是哈希表。",
        "去山里徒步三天需要带哪些东西？",
    ),
}


class PromptsExhausted(Exception):
    """A finite prompt source (a trace) has handed out all it has: the user is done."""


class PromptSource(Protocol):
    """Anything that hands out prompts (and optionally a per-prompt max_tokens)."""

    def next(self) -> tuple[Prompt, int | None]: ...


class SeedPrompts:
    """The seed's prompt sets. ``next()`` returns (prompt, None): max_tokens comes from options."""

    def __init__(self, kind: str, language: str = "en", rng: random.Random | None = None) -> None:
        self.kind = PROMPT_TYPES[kind]
        self.language = language
        self._rng = rng or random.Random()
        if self.kind == "random":
            self._choices: Sequence[str] = _RANDOM[language]
        else:
            self._choices = ((_SHORT if self.kind == "short" else _LONG)[language],)

    def next(self) -> tuple[Prompt, int | None]:
        c = self._choices
        return (c[0] if len(c) == 1 else self._rng.choice(c)), None
