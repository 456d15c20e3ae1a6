// Review forms: choosing a replacement module selects "Replace with"; choosing Approve or Reject
// clears the replacement, so the form never sends a decision it does not show.
document.addEventListener("change", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return;
  const form = target.closest("form.review");
  if (!form) return;
  const replacement = form.querySelector("select[name=replacement_module_id]");
  if (target === replacement && replacement.value) {
    const replace = form.querySelector("input[name=action][value=replace]");
    if (replace) replace.checked = true;
  } else if (target.matches("input[name=action]") && target.value !== "replace" && replacement) {
    replacement.value = "";
  }
});
