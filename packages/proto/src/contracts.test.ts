// Contract tests for the generated code: the five services expose exactly the RPCs the platform
// implements (with the right streaming kinds), the runtime services grpcurl and ghz rely on are
// generated, and protovalidate enforces the rules declared in our protos — proving that
// buf/validate/validate.proto printed at generate time carries the extension numbers the
// protovalidate runtime reads.
import { test } from "vitest";
import assert from "node:assert/strict";
import { create, type DescFile, type DescMessage, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { pathToString, reflect } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";

import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "./gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1alpha } from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason, file_promptcraft_rpc_v1_errors } from "./gen/promptcraft/rpc/v1/errors_pb.js";
import { IdentityService, file_promptcraft_identity_v1_identity_service } from "./gen/promptcraft/identity/v1/identity_service_pb.js";
import { AuthService, file_promptcraft_identity_v1_auth_service } from "./gen/promptcraft/identity/v1/auth_service_pb.js";
import { file_promptcraft_identity_v1_resources } from "./gen/promptcraft/identity/v1/resources_pb.js";
import {
  ContentService,
  CreateEntityRequestSchema,
  GetEntityRequestSchema,
  ListEntitiesRequestSchema,
  SetLabelRequestSchema,
  UpdateEntityRequestSchema,
  file_promptcraft_content_v1_content_service,
} from "./gen/promptcraft/content/v1/content_service_pb.js";
import { EntityType, file_promptcraft_content_v1_resources } from "./gen/promptcraft/content/v1/resources_pb.js";
import {
  CreateRelationshipRequestSchema,
  GraphService,
  file_promptcraft_graph_v1_graph_service,
} from "./gen/promptcraft/graph/v1/graph_service_pb.js";
import { RelationshipType, file_promptcraft_graph_v1_resources } from "./gen/promptcraft/graph/v1/resources_pb.js";
import { SearchService, file_promptcraft_search_v1_search_service } from "./gen/promptcraft/search/v1/search_service_pb.js";
import { file_promptcraft_search_v1_resources } from "./gen/promptcraft/search/v1/resources_pb.js";
import {
  AnalyticsService,
  IngestUsageEventsRequestSchema,
  file_promptcraft_analytics_v1_analytics_service,
} from "./gen/promptcraft/analytics/v1/analytics_service_pb.js";
import { UsageKind, file_promptcraft_analytics_v1_resources } from "./gen/promptcraft/analytics/v1/resources_pb.js";

type Kind = DescService["methods"][number]["methodKind"];

/** Expected RPCs of every service, in declaration order, with their streaming kinds. */
const expected: [DescService, string, Record<string, Kind>][] = [
  [
    IdentityService,
    "promptcraft.identity.v1.IdentityService",
    {
      CreateTenant: "unary",
      GetTenant: "unary",
      ListTenants: "unary",
      UpdateTenant: "unary",
      SuspendTenant: "unary",
      ResumeTenant: "unary",
      CreateUser: "unary",
      GetUser: "unary",
      ListUsers: "unary",
      UpdateUser: "unary",
      DeactivateUser: "unary",
      ReactivateUser: "unary",
      DeleteUser: "unary",
      UndeleteUser: "unary",
      CreateApiKey: "unary",
      GetApiKey: "unary",
      ListApiKeys: "unary",
      RevokeApiKey: "unary",
      CreateOidcProvider: "unary",
      GetOidcProvider: "unary",
      ListOidcProviders: "unary",
      UpdateOidcProvider: "unary",
      DeleteOidcProvider: "unary",
      ListLinkedIdentities: "unary",
      DeleteLinkedIdentity: "unary",
    },
  ],
  [
    AuthService,
    "promptcraft.identity.v1.AuthService",
    {
      Login: "unary",
      AcceptInvitation: "unary",
      RefreshToken: "unary",
      Logout: "unary",
      ListSessions: "unary",
      RevokeSession: "unary",
      ChangePassword: "unary",
      ResetPassword: "unary",
      GetLoginOptions: "unary",
      StartOidcLogin: "unary",
      CompleteOidcLogin: "unary",
      GetJwks: "unary",
      IntrospectCredential: "unary",
      RotateSigningKey: "unary",
    },
  ],
  [
    ContentService,
    "promptcraft.content.v1.ContentService",
    {
      CreateEntity: "unary",
      GetEntity: "unary",
      BatchGetEntities: "unary",
      ListEntities: "unary",
      UpdateEntity: "unary",
      DeleteEntity: "unary",
      UndeleteEntity: "unary",
      PurgeEntity: "unary",
      ListEntityNameHistory: "unary",
      ListEntityRevisions: "unary",
      RollbackEntity: "unary",
      DiffEntityRevisions: "unary",
      SetLabel: "unary",
      RemoveLabel: "unary",
      ListLabels: "unary",
      ListLabelHistory: "unary",
      GrantShare: "unary",
      ListShares: "unary",
      RevokeShare: "unary",
      AddFavorite: "unary",
      RemoveFavorite: "unary",
      ListFavorites: "unary",
      RenderTemplate: "unary",
    },
  ],
  [
    GraphService,
    "promptcraft.graph.v1.GraphService",
    {
      CreateRelationship: "unary",
      GetRelationship: "unary",
      ListRelationships: "unary",
      UpdateRelationship: "unary",
      DeleteRelationship: "unary",
      GetEntityGraph: "unary",
      ResolveDependencies: "unary",
      AnalyzeImpact: "unary",
      ListSuggestions: "unary",
      GenerateSuggestions: "unary",
      AcceptSuggestion: "unary",
      DismissSuggestion: "unary",
    },
  ],
  [
    SearchService,
    "promptcraft.search.v1.SearchService",
    {
      SearchEntities: "unary",
      FindSimilarEntities: "unary",
      FindNearDuplicates: "unary",
      GetEmbeddingStatus: "unary",
      GetEmbeddingStats: "unary",
      ReindexEntities: "unary",
      GetEmbeddingJob: "unary",
      ListEmbeddingJobs: "unary",
      CancelEmbeddingJob: "unary",
      ListEmbeddingModels: "unary",
    },
  ],
  [
    AnalyticsService,
    "promptcraft.analytics.v1.AnalyticsService",
    {
      StreamUsageEvents: "client_streaming",
      IngestUsageEvents: "unary",
      ListUsageEvents: "unary",
      GetUsageSummary: "unary",
      GetBillingSummary: "unary",
      GetEntityStats: "unary",
      ListEntityStats: "unary",
      GetEntityCoUsage: "unary",
      CompareLabelMove: "unary",
      ListQuotas: "unary",
      CheckQuota: "unary",
      ListReadModels: "unary",
      RefreshReadModel: "unary",
      GetPartitionMaintenanceStatus: "unary",
      RunPartitionMaintenance: "unary",
      ListAuditEvents: "unary",
      TailAuditEvents: "server_streaming",
    },
  ],
];

const ourFiles: DescFile[] = [
  file_promptcraft_rpc_v1_errors,
  file_promptcraft_identity_v1_resources,
  file_promptcraft_identity_v1_identity_service,
  file_promptcraft_identity_v1_auth_service,
  file_promptcraft_content_v1_resources,
  file_promptcraft_content_v1_content_service,
  file_promptcraft_graph_v1_resources,
  file_promptcraft_graph_v1_graph_service,
  file_promptcraft_search_v1_resources,
  file_promptcraft_search_v1_search_service,
  file_promptcraft_analytics_v1_resources,
  file_promptcraft_analytics_v1_analytics_service,
];

for (const [service, typeName, rpcs] of expected) {
  test(`${typeName} exposes its RPCs with their streaming kinds`, () => {
    assert.equal(service.typeName, typeName);
    const actual = Object.fromEntries(service.methods.map((m) => [m.name, m.methodKind]));
    assert.deepEqual(actual, rpcs);
  });
}

test("request and response messages follow the <Rpc>Request naming of buf STANDARD", () => {
  for (const [service] of expected) {
    for (const method of service.methods) {
      assert.equal(method.input.name, `${method.name}Request`, `${service.typeName}.${method.name}`);
    }
  }
});

test("grpc health v1 and reflection v1/v1alpha are generated for the platform", () => {
  assert.equal(Health.typeName, "grpc.health.v1.Health");
  assert.equal(Health.method.check.methodKind, "unary");
  assert.equal(Health.method.watch.methodKind, "server_streaming");
  for (const [reflection, typeName] of [
    [ReflectionV1, "grpc.reflection.v1.ServerReflection"],
    [ReflectionV1alpha, "grpc.reflection.v1alpha.ServerReflection"],
  ] as const) {
    assert.equal(reflection.typeName, typeName);
    assert.equal(reflection.method.serverReflectionInfo.methodKind, "bidi_streaming");
  }
  assert.equal(StatusSchema.typeName, "google.rpc.Status");
  assert.equal(ErrorInfoSchema.typeName, "google.rpc.ErrorInfo");
  assert.equal(BadRequestSchema.typeName, "google.rpc.BadRequest");
  assert.equal(ErrorReason[ErrorReason.ETAG_MISMATCH], "ETAG_MISMATCH");
});

const validator = createValidator();
const uuid = "0b7a4b6e-3f1c-4d2e-9a8b-1c2d3e4f5a6b";
const uuid2 = "5f0c7a2b-8d4e-4b1a-9c3d-2e1f0a9b8c7d";

/** Validates and returns the violated field paths with their rule ids, e.g. "entity.title string.max_len". */
function violations<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): string[] {
  const result = validator.validate(schema, create(schema, init));
  if (result.kind === "error") throw result.error;
  if (result.kind === "valid") return [];
  return result.violations.map((v) => `${pathToString(v.field)} ${v.ruleId}`.trim());
}

test("every message of our protos has rules that compile (no CEL or rule errors)", () => {
  // Validate each message with its singular message fields set (to empty messages), so the rules
  // declared on those fields are compiled and evaluated too, not skipped as unset.
  const visit = (messages: Iterable<DescMessage>) => {
    for (const message of messages) {
      const probe = reflect(message);
      for (const field of message.fields) {
        if (field.fieldKind === "message" && field.oneof === undefined) probe.set(field, reflect(field.message));
      }
      const result = validator.validate(message, probe.message);
      assert.notEqual(result.kind, "error", `${message.typeName}: ${result.kind === "error" ? String(result.error) : ""}`);
      visit(message.nestedMessages);
    }
  };
  for (const file of ourFiles) visit(file.messages);
});

test("protovalidate accepts a good CreateEntityRequest and rejects bad ones with field paths", () => {
  const good = {
    entity: { type: EntityType.TEMPLATE, title: "Support reply", tags: ["support", "email"] },
    requestId: uuid,
    commitMessage: "first draft",
  };
  assert.deepEqual(violations(CreateEntityRequestSchema, good), []);

  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, entity: undefined }), ["entity required"]);
  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, entity: { ...good.entity, title: "x".repeat(301) } }), [
    "entity.title string.max_len",
  ]);
  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, entity: { ...good.entity, title: "" } }), [
    "entity entity.title_required",
  ]);
  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, entity: { title: "t" } }), [
    "entity entity.type_required",
  ]);
  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, requestId: "not-a-uuid" }), [
    "request_id string.uuid",
  ]);
  assert.deepEqual(violations(CreateEntityRequestSchema, { ...good, entity: { ...good.entity, tags: ["a", "a"] } }), [
    "entity.tags repeated.unique",
  ]);
});

test("protovalidate enforces ids, page sizes, labels, masks and selector combinations", () => {
  assert.deepEqual(violations(GetEntityRequestSchema, { entityId: uuid }), []);
  assert.deepEqual(violations(GetEntityRequestSchema, { entityId: "42" }), ["entity_id string.uuid"]);
  assert.deepEqual(violations(GetEntityRequestSchema, { entityId: uuid, label: "production", asOfTime: timestampFromDate(new Date("2026-01-06T14:02:00Z")) }), []);
  assert.deepEqual(violations(GetEntityRequestSchema, { entityId: uuid, version: 3, label: "production" }), [
    "get_entity.selector",
  ]);

  assert.deepEqual(violations(ListEntitiesRequestSchema, { pageSize: 1000 }), []);
  assert.deepEqual(violations(ListEntitiesRequestSchema, { pageSize: 1001 }), ["page_size int32.gte_lte"]);
  assert.deepEqual(violations(ListEntitiesRequestSchema, { pageSize: -1 }), ["page_size int32.gte_lte"]);
  assert.deepEqual(violations(ListEntitiesRequestSchema, { orderBy: "title desc" }), []);
  assert.deepEqual(violations(ListEntitiesRequestSchema, { orderBy: "random()" }), ["order_by string.in"]);

  assert.deepEqual(violations(SetLabelRequestSchema, { entityId: uuid, label: "production", version: 2 }), []);
  assert.deepEqual(violations(SetLabelRequestSchema, { entityId: uuid, label: "Prod!", version: 2 }), [
    "label string.pattern",
  ]);
  assert.deepEqual(violations(SetLabelRequestSchema, { entityId: uuid, label: "a".repeat(37), version: 2 }), [
    "label string.pattern",
  ]);
  assert.deepEqual(violations(SetLabelRequestSchema, { entityId: uuid, label: "latest", version: 2 }), [
    "label string.not_in",
  ]);

  const entity = { id: uuid, title: "New title", etag: "W/3" };
  assert.deepEqual(violations(UpdateEntityRequestSchema, { entity, updateMask: { paths: ["title", "content.template"] } }), []);
  assert.deepEqual(violations(UpdateEntityRequestSchema, { entity, updateMask: { paths: ["owner_id"] } }), [
    "update_mask field_mask.in",
  ]);
  assert.deepEqual(violations(UpdateEntityRequestSchema, { entity }), ["update_mask required"]);
});

test("protovalidate enforces relationship strength and endpoints", () => {
  const relationship = {
    sourceEntityId: uuid,
    targetEntityId: uuid2,
    type: RelationshipType.DEPENDS_ON,
    strength: 0.8,
    targetPin: { case: "targetLabel" as const, value: "production" },
  };
  assert.deepEqual(violations(CreateRelationshipRequestSchema, { relationship }), []);
  assert.deepEqual(violations(CreateRelationshipRequestSchema, { relationship: { ...relationship, strength: 1.5 } }), [
    "relationship.strength double.gte_lte",
  ]);
  assert.deepEqual(
    violations(CreateRelationshipRequestSchema, { relationship: { ...relationship, targetEntityId: uuid } }),
    ["relationship relationship.no_self_loop"],
  );
});

test("protovalidate enforces usage-event batches (unique ids, a time, kinds)", () => {
  const event = (id: string) => ({ id, kind: UsageKind.LLM_CALL, model: "gpt-4o-mini", inputTokens: 120, outputTokens: 30, occurTime: timestampNow() });
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [event(uuid), event(uuid2)] }), []);
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [] }), ["events repeated.min_items"]);
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [event(uuid), event(uuid)] }), [
    "events events.unique_ids",
  ]);
  // The time window (5 minutes ahead, the partitions kept) is the service's check, answered with
  // EVENT_TIME_OUT_OF_RANGE (test/src/analytics-ingest.e2e.test.ts), not a proto rule.
  const future = { ...event(uuid), occurTime: timestampFromDate(new Date(Date.now() + 3_600_000)) };
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [future] }), []);
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [{ ...event(uuid), occurTime: undefined }] }), ["events[0].occur_time required"]);
  assert.deepEqual(violations(IngestUsageEventsRequestSchema, { events: [{ ...event(uuid), kind: UsageKind.UNSPECIFIED }] }), [
    "events[0].kind enum.not_in",
  ]);
});
