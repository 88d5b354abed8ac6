// The map page: every street tree from the vector tiles (/tiles/trees/{z}/{x}/{y}.mvt), the
// filter panel, the totals and a popup per tree. Configuration comes from the page's
// #map-config JSON (trees/views.py); nothing here talks to another host unless a basemap is
// configured. The filters live in the page's query string, which is also the tiles' and the
// API's: one set of parameter names (trees/api/filters.py).

const config = JSON.parse(document.getElementById("map-config").textContent);
const maplibregl = await import(config.maplibre);
maplibregl.setWorkerUrl(new URL(config.maplibreWorker, location.href).href);

const form = document.getElementById("filters");
const loading = document.getElementById("loading");
const panel = document.getElementById("panel");
const toggle = document.getElementById("panel-toggle");

const COLOURS = {
  Good: "#1a9850",
  Fair: "#e6a100",
  Poor: "#d73027",
  Dead: "#5a5a5a",
  Stump: "#8c5a2b",
};

// --- Filters <-> query string --------------------------------------------------------------

/** The filters the form holds, as URLSearchParams with only non-empty values. */
function formParams() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    const trimmed = String(value).trim();
    if (trimmed !== "" && config.filters.includes(name)) params.append(name, trimmed);
  }
  return params;
}

/** The filters in a query string, keeping only the ones this page knows. */
function filterParams(search) {
  const params = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(search)) {
    if (value !== "" && config.filters.includes(name)) params.append(name, value);
  }
  return params;
}

/** Sets the form's inputs to `params`. */
function fillForm(params) {
  for (const element of form.elements) {
    if (!element.name) continue;
    const values = params.getAll(element.name);
    if (element.type === "checkbox") element.checked = values.includes(element.value);
    else if (element.tagName === "INPUT") element.value = values[0] ?? "";
  }
}

function tileTemplate(params) {
  const query = params.toString();
  const path = new URL(config.tiles, location.href).href.replace(/%7B/g, "{").replace(/%7D/g, "}");
  return query ? `${path}?${query}` : path;
}

// --- The map -------------------------------------------------------------------------------

function buildStyle(params) {
  const sources = {
    trees: {
      type: "vector",
      tiles: [tileTemplate(params)],
      minzoom: 0,
      maxzoom: config.treeZoom, // deeper, the tree-by-tree tiles of treeZoom are drawn larger
      bounds: config.bounds,
      attribution:
        'Census data: <a href="https://www.nycgovparks.org/trees/treescount">NYC Parks</a>, ' +
        '<a href="https://data.cityofnewyork.us/d/uvpi-gqnh">NYC Open Data</a>',
    },
  };
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#f3f1ec" } }];
  if (config.basemap) {
    sources.basemap = {
      type: "raster",
      tiles: [config.basemap.url],
      tileSize: 256,
      attribution: escapeHtml(config.basemap.attribution),
    };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  const healthTotal = ["+", ["get", "good"], ["get", "fair"], ["get", "poor"]];
  layers.push(
    {
      // Below treeZoom: one dot per grid cell, sized by its trees, coloured by the good share.
      id: "tree-cells",
      type: "circle",
      source: "trees",
      "source-layer": "trees",
      maxzoom: config.treeZoom,
      filter: ["has", "count"],
      paint: {
        "circle-radius": [
          "interpolate", ["linear"], ["sqrt", ["get", "count"]],
          1, 2.5,
          10, 5,
          40, 10,
        ],
        "circle-color": [
          "case",
          [">", healthTotal, 0],
          [
            "interpolate", ["linear"], ["/", ["get", "good"], healthTotal],
            0.4, COLOURS.Poor,
            0.7, COLOURS.Fair,
            0.9, COLOURS.Good,
          ],
          COLOURS.Dead,
        ],
        "circle-opacity": 0.8,
      },
    },
    {
      // From treeZoom: one dot per tree, coloured by health (or status), sized by diameter.
      id: "tree-points",
      type: "circle",
      source: "trees",
      "source-layer": "trees",
      minzoom: config.treeZoom,
      filter: ["has", "tree_id"],
      paint: {
        "circle-radius": [
          "interpolate", ["linear"], ["zoom"],
          config.treeZoom, ["interpolate", ["linear"], ["get", "dbh"], 0, 1.5, 40, 4.5],
          19, ["interpolate", ["linear"], ["get", "dbh"], 0, 4, 40, 24],
        ],
        "circle-color": [
          "match", ["get", "health"],
          "Good", COLOURS.Good,
          "Fair", COLOURS.Fair,
          "Poor", COLOURS.Poor,
          ["match", ["get", "status"], "Stump", COLOURS.Stump, COLOURS.Dead],
        ],
        "circle-stroke-color": "#ffffff",
        "circle-stroke-width": ["interpolate", ["linear"], ["zoom"], config.treeZoom, 0, 17, 1],
        "circle-opacity": 0.9,
      },
    },
  );
  return { version: 8, sources, layers };
}

function escapeHtml(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

const initialParams = filterParams(location.search);
fillForm(initialParams);

const map = new maplibregl.Map({
  container: "map",
  style: buildStyle(initialParams),
  bounds: config.bounds,
  maxBounds: [
    [config.bounds[0] - 0.5, config.bounds[1] - 0.5],
    [config.bounds[2] + 0.5, config.bounds[3] + 0.5],
  ],
  hash: "map", // the view travels in the URL's fragment (#map=zoom/lat/lon), filters in its query
  attributionControl: false,
  keyboard: true,
});
window.treeMap = map; // for the browser tests (tests/browser/test_map.py) and the console
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
map.addControl(new maplibregl.ScaleControl({ unit: "imperial" }), "bottom-left");
map.addControl(
  new maplibregl.AttributionControl({
    compact: false,
    customAttribution: '<a href="https://maplibre.org/">MapLibre</a>',
  }),
  "bottom-right",
);

// --- Loading indicator ---------------------------------------------------------------------

function showLoading(text = "Loading trees…") {
  loading.textContent = text;
  loading.hidden = false;
}
map.on("dataloading", () => showLoading());
map.on("idle", () => {
  loading.hidden = true;
  document.body.dataset.mapIdle = "true";
});
map.on("error", (event) => {
  // A failed tile is reported, not thrown; the map keeps what it has.
  console.warn("map:", event.error?.message ?? event);
  showLoading("Some trees could not be loaded.");
});

// --- Applying filters ----------------------------------------------------------------------

let current = initialParams.toString();

function apply(params, { push }) {
  const query = params.toString();
  if (push && query !== current) {
    const url = `${location.pathname}${query ? `?${query}` : ""}${location.hash}`;
    history.pushState({ filters: query }, "", url);
  }
  current = query;
  document.body.dataset.mapIdle = "false";
  map.getSource("trees").setTiles([tileTemplate(params)]);
  map.triggerRepaint();
  loadTotals(params);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  apply(formParams(), { push: true });
});
// Checkboxes apply at once; text and numbers on change (Enter, leaving the field, a pick).
form.addEventListener("change", () => {
  if (form.checkValidity()) apply(formParams(), { push: true });
});
form.addEventListener("reset", () => {
  // After the browser has reset the inputs (to the values the page was rendered with).
  setTimeout(() => {
    fillForm(new URLSearchParams());
    apply(new URLSearchParams(), { push: true });
  });
});
window.addEventListener("popstate", () => {
  const params = filterParams(location.search);
  fillForm(params);
  apply(params, { push: false });
});

// --- Totals --------------------------------------------------------------------------------

const totalOutput = document.getElementById("total");
const byHealth = document.getElementById("by-health");
const totalsError = document.getElementById("totals-error");
const numbers = new Intl.NumberFormat("en-US");
let totalsRequest = null;

async function loadTotals(params) {
  totalsRequest?.abort();
  const request = new AbortController();
  totalsRequest = request;
  const query = params.toString();
  totalOutput.textContent = "…";
  try {
    const response = await fetch(`${config.api.stats}${query ? `?${query}` : ""}`, {
      headers: { Accept: "application/json" },
      signal: request.signal,
    });
    const body = await response.json();
    if (!response.ok) throw new Error(describeError(body, response));
    totalsError.hidden = true;
    totalOutput.textContent = `${numbers.format(body.total)} ${body.total === 1 ? "tree" : "trees"}`;
    const rows = [
      ...body.by_health.filter((row) => row.value).map((row) => [`${row.value} health`, row.count]),
      ...body.by_status.filter((row) => row.value !== "Alive").map((row) => [row.value, row.count]),
    ];
    byHealth.replaceChildren(
      ...rows.flatMap(([label, count]) => {
        const dt = document.createElement("dt");
        dt.textContent = label;
        const dd = document.createElement("dd");
        dd.textContent = numbers.format(count);
        return [dt, dd];
      }),
    );
  } catch (error) {
    if (error.name === "AbortError") return;
    totalOutput.textContent = "–";
    byHealth.replaceChildren();
    totalsError.textContent = `Totals unavailable: ${error.message}`;
    totalsError.hidden = false;
  }
}

function describeError(body, response) {
  if (body && body.errors) {
    return Object.entries(body.errors)
      .map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`)
      .join("; ");
  }
  return (body && body.detail) || `${response.status} ${response.statusText}`;
}

// --- Species search ------------------------------------------------------------------------

async function loadSpecies() {
  try {
    const response = await fetch(`${config.api.species}?ordering=common_name`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    const species = await response.json();
    const list = document.getElementById("species-list");
    list.replaceChildren(
      ...species.map((one) => {
        const option = document.createElement("option");
        option.value = one.common_name || one.latin_name;
        option.label = `${one.latin_name} (${numbers.format(one.tree_count)})`;
        return option;
      }),
    );
  } catch (error) {
    console.warn("species list:", error.message);
  }
}

// --- A tree's popup ------------------------------------------------------------------------

const popup = new maplibregl.Popup({ maxWidth: "320px", focusAfterOpen: true });

function field(list, label, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function link(text, href) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

async function openTree(treeId, lngLat) {
  const content = document.createElement("div");
  content.className = "tree-popup";
  content.dataset.treeId = treeId;
  const heading = document.createElement("h3");
  heading.textContent = `Tree ${treeId}`;
  const status = document.createElement("p");
  status.textContent = "Loading…";
  content.append(heading, status);
  popup.setLngLat(lngLat).setDOMContent(content).addTo(map);

  const apiUrl = `${config.api.trees}${encodeURIComponent(treeId)}/`;
  try {
    const response = await fetch(apiUrl, { headers: { Accept: "application/json" } });
    const tree = await response.json();
    if (!response.ok) throw new Error(describeError(tree, response));
    const details = document.createElement("dl");
    const species = tree.species || {};
    field(details, "Species", species.common_name);
    field(details, "Latin name", species.latin_name);
    field(details, "Health", tree.health || (tree.status !== "Alive" ? "—" : ""));
    field(details, "Status", tree.status);
    field(details, "Trunk diameter", tree.tree_dbh != null ? `${tree.tree_dbh} in` : "");
    field(details, "Address", tree.address);
    field(details, "Neighbourhood", tree.nta_name);
    field(details, "Borough", tree.borough);
    field(details, "Problems", tree.problems);
    field(details, "Surveyed", tree.created_at || tree.surveyed_on);
    const links = document.createElement("p");
    links.className = "links";
    links.append(link("API record", apiUrl));
    if (config.adminTree) {
      links.append(" · ", link("Admin", config.adminTree.replace(config.idPlaceholder, treeId)));
    }
    status.replaceWith(details, links);
  } catch (error) {
    status.textContent = `Could not load this tree: ${error.message}`;
  }
}

map.on("click", "tree-points", (event) => {
  const feature = event.features?.[0];
  if (!feature) return;
  const treeId = feature.properties.tree_id ?? feature.id;
  openTree(treeId, feature.geometry.coordinates.slice(0, 2));
});
map.on("mouseenter", "tree-points", () => (map.getCanvas().style.cursor = "pointer"));
map.on("mouseleave", "tree-points", () => (map.getCanvas().style.cursor = ""));

// --- The collapsible panel (narrow screens) ------------------------------------------------

const narrow = window.matchMedia("(max-width: 700px)");
function setPanel(open) {
  toggle.setAttribute("aria-expanded", String(open));
  panel.classList.toggle("collapsed", !open);
  map.resize();
}
toggle.addEventListener("click", () => setPanel(toggle.getAttribute("aria-expanded") !== "true"));
narrow.addEventListener("change", () => setPanel(!narrow.matches));
setPanel(!narrow.matches);

loadTotals(initialParams);
loadSpecies();
