// llm-users: Locust's tables render every cell as text; this makes the LLM tab's "open /llm"
// cell a link. React owns the cell's text node, so the link is added beside it (the text is
// blanked, not removed) and taken away again if React reuses the cell for another row.
(() => {
  const page = document.currentScript.dataset.page || "/llm";
  const mark = "open " + page;
  const fix = () => {
    for (const a of document.querySelectorAll("a.llm-users-link")) {
      const text = a.parentElement && a.parentElement.firstChild;
      if (text && text.nodeType === 3 && text.nodeValue !== "") a.remove();
    }
    for (const td of document.querySelectorAll("td")) {
      const text = td.firstChild;
      if (!text || text.nodeType !== 3 || !text.nodeValue.startsWith(mark)) continue;
      const a = document.createElement("a");
      a.className = "llm-users-link"; a.href = page; a.textContent = text.nodeValue;
      text.nodeValue = "";
      td.append(a);
    }
  };
  new MutationObserver(fix).observe(document.body, {childList: true, subtree: true, characterData: true});
  fix();
})();
