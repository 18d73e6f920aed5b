package main

// demoOpenAPI documents the demo backend (which echoes the method and path
// of every request) as the dev seed's published API: its developer portal
// page renders this reference, try-it calls it and its SDKs are built from it.
const demoOpenAPI = `{
  "openapi": "3.0.3",
  "info": {"title": "Demo API", "version": "1.0.0",
    "description": "A demo API behind Tollgate. Every operation answers with the backend that served it, the method and the path, so you can watch round-robin balancing and the gateway's rate limit at work."},
  "tags": [
    {"name": "greetings", "description": "Say hello."},
    {"name": "items", "description": "A small catalogue of items."}
  ],
  "components": {
    "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    "schemas": {
      "Echo": {"type": "object", "required": ["backend", "method", "path"],
        "properties": {
          "backend": {"type": "string", "description": "which demo backend answered", "example": "a"},
          "method": {"type": "string", "example": "GET"},
          "path": {"type": "string", "example": "/hello"}}},
      "NewItem": {"type": "object", "required": ["name"],
        "properties": {
          "name": {"type": "string", "example": "Blue widget"},
          "color": {"type": "string", "enum": ["blue", "red", "green"]},
          "price_cents": {"type": "integer", "minimum": 0, "example": 1299}}}
    }
  },
  "security": [{"apiKey": []}],
  "paths": {
    "/": {"get": {"operationId": "root", "tags": ["greetings"], "summary": "The API's root",
      "responses": {"200": {"description": "the echo", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}}}}},
    "/hello": {"get": {"operationId": "hello", "tags": ["greetings"], "summary": "Say hello",
      "parameters": [{"name": "name", "in": "query", "description": "who to greet", "schema": {"type": "string", "example": "Ada"}}],
      "responses": {"200": {"description": "the echo", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}}}}},
    "/items": {
      "get": {"operationId": "listItems", "tags": ["items"], "summary": "List items",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "example": 10}}],
        "responses": {"200": {"description": "the echo", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}}}},
      "post": {"operationId": "createItem", "tags": ["items"], "summary": "Add an item",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
        "responses": {"200": {"description": "the echo", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}}}}},
    "/items/{id}": {"get": {"operationId": "getItem", "tags": ["items"], "summary": "Read an item",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "example": "42"}}],
      "responses": {"200": {"description": "the echo", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}},
        "404": {"description": "no such item"}}}}
  }
}`
