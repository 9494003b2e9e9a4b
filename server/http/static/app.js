// The exchange's live page: instrument picker, book ladder and depth chart, trade tape and
// last price, order entry, the key's open orders with cancel. Everything comes from the
// HTTP API and its server-sent event feeds; prices and quantities stay decimal strings.
import { compareDecimal, isZero, looksDecimal } from "./decimal.js";
import { openStream } from "./events.js";

const KEY_STORAGE = "exchange-core.api-key";
const OPEN_STATUSES = new Set(["PENDING", "OPEN", "PARTIALLY_FILLED", "TRIGGER_PENDING"]);
const TAPE_LENGTH = 40;
const LADDER_DEPTH = 12;
const CHART_DEPTH = 50; // levels a side in the depth chart

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  instrument: "",
  book: { bids: new Map(), asks: new Map(), sequence: -1 },
  trades: [],
  tradeIds: new Set(),
  lastTradePosition: "",
  orders: new Map(),
  closers: [],
  drawPending: false,
};

function headers(json) {
  const result = json ? { "Content-Type": "application/json" } : {};
  if (state.key) result.Authorization = `Bearer ${state.key}`;
  return result;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(payload.error ? payload.error.message : response.statusText);
    error.status = response.status;
    error.detail = payload.error || {};
    throw error;
  }
  return payload;
}

function notice(text) {
  $("notice").hidden = !text;
  $("notice").textContent = text || "";
}

function connection(text, good) {
  $("connection").textContent = text;
  $("connection").className = "pill " + (good ? "good" : "bad");
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// -- the book -------------------------------------------------------------------------------

function sortedLevels(side, descending) {
  const levels = [...side.values()];
  levels.sort((a, b) => (descending ? -1 : 1) * compareDecimal(a.price, b.price));
  return levels;
}

function renderBook() {
  state.drawPending = false;
  const bids = sortedLevels(state.book.bids, true).slice(0, LADDER_DEPTH);
  const asks = sortedLevels(state.book.asks, false).slice(0, LADDER_DEPTH);
  const row = (level, side) => {
    const tr = document.createElement("tr");
    tr.className = side;
    tr.dataset.price = level.price;
    tr.append(cell(level.price, "price"), cell(level.quantity), cell(String(level.orderCount)));
    return tr;
  };
  $("asks").replaceChildren(...[...asks].reverse().map((level) => row(level, "ask")));
  $("bids").replaceChildren(...bids.map((level) => row(level, "bid")));
  $("spread").textContent =
    bids.length && asks.length ? `bid ${bids[0].price} · ask ${asks[0].price}` : "–";
  drawDepth(
    sortedLevels(state.book.bids, true).slice(0, CHART_DEPTH),
    sortedLevels(state.book.asks, false).slice(0, CHART_DEPTH)
  );
}

function scheduleBook() {
  if (!state.drawPending) {
    state.drawPending = true;
    requestAnimationFrame(renderBook);
  }
}

// Floats here are for drawing only: nothing drawn is sent back or compared.
function drawDepth(bids, asks) {
  const canvas = $("depth");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  if (!bids.length && !asks.length) return;
  const cumulative = (levels) => {
    let total = 0;
    return levels.map((level) => [Number(level.price), (total += Number(level.quantity))]);
  };
  const bidPoints = cumulative(bids);
  const askPoints = cumulative(asks);
  const prices = [...bidPoints, ...askPoints].map(([price]) => price);
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  const top = Math.max(1e-12, ...[...bidPoints, ...askPoints].map(([, total]) => total));
  const x = (price) => (high === low ? width / 2 : ((price - low) / (high - low)) * (width - 20) + 10);
  const y = (total) => height - 4 - (total / top) * (height - 14);
  const area = (points, colour) => {
    if (!points.length) return;
    context.beginPath();
    context.moveTo(x(points[0][0]), height - 4);
    let previous = height - 4;
    for (const [price, total] of points) {
      context.lineTo(x(price), previous);
      context.lineTo(x(price), y(total));
      previous = y(total);
    }
    context.lineTo(x(points[points.length - 1][0]), height - 4);
    context.closePath();
    context.fillStyle = colour + "55";
    context.strokeStyle = colour;
    context.fill();
    context.stroke();
  };
  area(bidPoints, "#1f9d55");
  area(askPoints, "#d64545");
}

function applyBookEvent(event, data, restart) {
  if (event === "snapshot") {
    state.book.bids = new Map(data.bids.map((level) => [level.price, level]));
    state.book.asks = new Map(data.asks.map((level) => [level.price, level]));
    state.book.sequence = data.sequence;
  } else if (event === "update") {
    if (data.sequence !== state.book.sequence + 1) {
      restart(); // a gap: a fresh snapshot, never a guessed book
      return;
    }
    state.book.sequence = data.sequence;
    for (const change of data.changes) {
      const side = change.side === "BUY" ? state.book.bids : state.book.asks;
      if (isZero(change.quantity)) side.delete(change.price);
      else side.set(change.price, change);
    }
  }
  scheduleBook();
}

// -- trades ---------------------------------------------------------------------------------

function addTrade(trade, live) {
  if (state.tradeIds.has(trade.tradeId)) return;
  state.tradeIds.add(trade.tradeId);
  if (live) state.trades.unshift(trade);
  else state.trades.push(trade);
  while (state.trades.length > TAPE_LENGTH) state.tradeIds.delete(state.trades.pop().tradeId);
  if (live || !state.lastTradePosition) state.lastTradePosition = trade.position;
}

function renderTrades() {
  $("trades").replaceChildren(
    ...state.trades.map((trade) => {
      const tr = document.createElement("tr");
      tr.dataset.tradeId = trade.tradeId;
      tr.className = trade.takerSide === "BUY" ? "bid" : "ask";
      const time = trade.executedAt ? new Date(trade.executedAt).toLocaleTimeString() : "";
      tr.append(cell(time), cell(trade.price, "price"), cell(trade.quantity));
      return tr;
    })
  );
  if (state.trades.length) $("last-price").textContent = state.trades[0].price;
}

// -- my orders ------------------------------------------------------------------------------

function keepOrder(order) {
  const known = state.orders.get(order.orderId);
  if (known && known.updatedAt > order.updatedAt) return; // RFC 3339 UTC: text order is time order
  if (OPEN_STATUSES.has(order.status) && order.asset === state.instrument) {
    state.orders.set(order.orderId, order);
  } else {
    state.orders.delete(order.orderId);
  }
}

function renderOrders() {
  const orders = [...state.orders.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  $("my-orders").replaceChildren(
    ...orders.map((order) => {
      const tr = document.createElement("tr");
      tr.dataset.orderId = order.orderId;
      tr.className = order.type === "BUY" ? "bid" : "ask";
      const button = document.createElement("button");
      button.textContent = "Cancel";
      button.className = "cancel";
      button.addEventListener("click", () => cancelOrder(order.orderId, button));
      const action = document.createElement("td");
      action.append(button);
      tr.append(
        cell(order.type),
        cell(order.orderType),
        cell(order.price || "market", "price"),
        cell(order.quantity),
        cell(order.filledQuantity),
        cell(order.status, "status"),
        cell(order.timeInForce),
        action
      );
      return tr;
    })
  );
}

async function loadOrders() {
  if (!state.key) return;
  const page = await api("GET", `/orders?asset=${encodeURIComponent(state.instrument)}&pageSize=200`);
  for (const order of page.orders) keepOrder(order);
  renderOrders();
}

async function cancelOrder(orderId, button) {
  button.disabled = true;
  try {
    const order = await api("DELETE", `/orders/${encodeURIComponent(orderId)}?waitForOutcome=true`);
    keepOrder(order);
    renderOrders();
  } catch (error) {
    button.disabled = false;
    $("form-message").textContent = `Cancel refused: ${error.message}`;
  }
}

// -- order entry ----------------------------------------------------------------------------

async function placeOrder(event) {
  event.preventDefault();
  const message = $("form-message");
  const orderType = $("order-type").value;
  const price = $("price").value.trim();
  const quantity = $("quantity").value.trim();
  if (!looksDecimal(quantity) || (orderType === "LIMIT" && !looksDecimal(price))) {
    message.textContent = "Price and quantity are decimals, e.g. 45000.00 and 0.5";
    message.className = "message bad";
    return;
  }
  const body = {
    asset: state.instrument,
    type: document.querySelector("input[name=side]:checked").value,
    orderType,
    quantity, // strings, exactly as typed: never a float
    timeInForce: $("tif").value,
    waitForOutcome: true,
  };
  if (orderType === "LIMIT") body.price = price;
  $("place").disabled = true;
  try {
    const order = await api("POST", "/orders", body);
    keepOrder(order);
    renderOrders();
    message.textContent = `${order.type} ${order.quantity} ${order.asset} @ ${order.price || "market"}: ${order.status}`;
    message.className = "message good";
  } catch (error) {
    const field = error.detail.field ? ` (${error.detail.field}: ${error.detail.reason})` : "";
    message.textContent = `Refused: ${error.message}${field}`;
    message.className = "message bad";
  } finally {
    $("place").disabled = false;
  }
}

// -- wiring ---------------------------------------------------------------------------------

function problem(status, text) {
  if (status === 401 || status === 403) {
    notice("Enter an API key with the read (or trade) scope, e.g. from: exchange keys issue --user NAME --scope trade");
    connection("no key", false);
  } else {
    connection("reconnecting", false);
    if (status) notice(text);
  }
}

function follow() {
  for (const close of state.closers) close();
  state.closers = [];
  state.book = { bids: new Map(), asks: new Map(), sequence: -1 };
  state.trades = [];
  state.tradeIds = new Set();
  state.lastTradePosition = "";
  state.orders = new Map();
  renderBook();
  renderTrades();
  renderOrders();
  $("last-price").textContent = "–";
  const symbol = encodeURIComponent(state.instrument);
  const key = () => state.key;

  let closeBook = null;
  const startBook = () => {
    if (closeBook) closeBook();
    closeBook = openStream(`/streams/book/${symbol}`, {
      key,
      onOpen: () => {
        connection("live", true);
        notice("");
      },
      onEvent: (event, data) => applyBookEvent(event, data, startBook),
      onProblem: problem,
    });
  };
  startBook();
  state.closers.push(() => closeBook && closeBook());

  state.closers.push(
    openStream(`/streams/trades/${symbol}`, {
      key,
      onOpen: async () => {
        if (state.trades.length) return;
        const page = await api("GET", `/trades/${symbol}?pageSize=${TAPE_LENGTH}`).catch(() => null);
        if (page) page.trades.forEach((trade) => addTrade(trade, false));
        const book = await api("GET", `/books/${symbol}?depth=1`).catch(() => null);
        renderTrades();
        if (!state.trades.length && book && book.lastPrice) $("last-price").textContent = book.lastPrice;
      },
      onEvent: (event, data) => {
        if (event !== "trade") return;
        addTrade(data, true);
        renderTrades();
      },
      onProblem: problem,
    })
  );

  if (state.key) {
    state.closers.push(
      openStream(`/streams/orders?asset=${symbol}`, {
        key,
        onOpen: () => loadOrders().catch((error) => notice(error.message)),
        onEvent: (event, data) => {
          if (event !== "order") return;
          keepOrder(data.order);
          renderOrders();
        },
        onProblem: () => {},
      })
    );
  }
}

async function start() {
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value.trim();
    localStorage.setItem(KEY_STORAGE, state.key);
    $("who").textContent = state.key ? state.key.slice(0, 12) + "…" : "";
    init();
  });
  $("who").textContent = state.key ? state.key.slice(0, 12) + "…" : "";
  $("instrument").addEventListener("change", () => {
    state.instrument = $("instrument").value;
    follow();
  });
  $("order-form").addEventListener("submit", placeOrder);
  $("order-type").addEventListener("change", () => {
    $("price").disabled = $("order-type").value === "MARKET";
  });
  await init();
}

async function init() {
  try {
    const { instruments } = await api("GET", "/instruments");
    const select = $("instrument");
    const chosen = state.instrument || (instruments[0] && instruments[0].symbol) || "";
    select.replaceChildren(
      ...instruments.map((instrument) => {
        const option = document.createElement("option");
        option.value = option.textContent = instrument.symbol;
        option.title = `tick ${instrument.tickSize}, lot ${instrument.lotSize}`;
        return option;
      })
    );
    select.value = chosen;
    state.instrument = chosen;
    document.body.dataset.ready = "true";
    follow();
  } catch (error) {
    problem(error.status || 0, error.message);
  }
}

start();
