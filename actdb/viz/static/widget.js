// actdb's map as a notebook widget (anywidget's ES module): the page's map (map.js on
// plotly.js, both sent by the kernel, nothing fetched from a network), the queries placed,
// a stored image's thumbnail and class on hover (asked of the kernel), and a lasso or box
// selection sent back as image ids (the model's `selected_ids`, which Python reads as
// `m.selected`).

// Run a classic script's text once per page, with no module system in sight, so that its
// UMD wrapper sets the global (window.Plotly, window.actdbMap) in every front-end.
function once(name, source) {
  if (!window[name]) new Function("module", "exports", "define", source).call(window);
  return window[name];
}

function render({model, el}) {
  once("Plotly", model.get("_plotly"));
  const {ActdbMap, decodePoints} = once("actdbMap", model.get("_map_js"));
  const view = model.get("points");  // a DataView of the binary payload
  const buffer = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  const pts = decodePoints(buffer, model.get("meta"));

  el.innerHTML = "";
  const box = document.createElement("div");
  box.className = "actdb-widget";
  box.style.cssText = "position:relative;font:12px system-ui,sans-serif";
  const plot = document.createElement("div");
  plot.style.cssText = "width:100%;height:520px";
  const tip = document.createElement("div");
  tip.style.cssText = "position:absolute;display:none;pointer-events:none;background:#fff;" +
    "border:1px solid #ccc;padding:4px;box-shadow:0 1px 4px rgba(0,0,0,.2);z-index:10";
  const status = document.createElement("div");
  status.className = "actdb-selection";
  status.style.color = "#444";
  box.append(plot, tip, status);
  el.appendChild(box);

  let hovered = null;
  const map = new ActdbMap(plot, pts, {
    onHover(i, event) {
      hovered = pts.ids[i];
      tip.textContent = map.describe(i);
      tip.style.display = "block";
      const r = box.getBoundingClientRect();
      tip.style.left = `${event.clientX - r.left + 12}px`;
      tip.style.top = `${event.clientY - r.top + 12}px`;
      model.send({kind: "thumbnail", image_id: hovered});
    },
    onUnhover() {
      hovered = null;
      tip.style.display = "none";
    },
    onSelect(indices) {
      const ids = indices.map((i) => pts.ids[i]);
      model.set("selected_ids", ids);
      model.save_changes();
      status.textContent = ids.length ? `${ids.length} selected: m.selected in Python` : "";
    },
  });

  model.on("msg:custom", (msg) => {  // the kernel's answer to a hover
    if (msg.kind !== "thumbnail" || msg.image_id !== hovered) return;
    const img = document.createElement("img");
    img.src = msg.uri;
    img.style.cssText = "display:block;max-width:128px;max-height:128px";
    tip.prepend(img);
  });
  const draw = () => map.setQueries(model.get("queries"), model.get("top"));
  model.on("change:queries", draw);
  draw();
  return () => { el.innerHTML = ""; };
}

export default {render};
