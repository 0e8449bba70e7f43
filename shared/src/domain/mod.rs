//! Domain types and their validation. Pure data: no I/O here.

pub mod aggregation;
pub mod apps;
pub mod budget;
pub mod directory;
pub mod generations;
pub mod ids;
pub mod imports;
pub mod integration;
pub mod mapping;
pub mod metric;
pub mod status;
pub mod unmatched;
pub mod window;

pub use apps::{AppRow, AppsError, AppsTable, Segment, DEFAULT_APP, UNKNOWN_APP};
pub use budget::{Answer, Budget, BudgetSettings, Take};
pub use directory::{DirectoryObject, EndUser, EndUserInput};
pub use generations::{Generations, OwnGeneration};
pub use ids::{ImportId, MappingId, RunId, TenantId};
pub use imports::{DirectoryImport, ImportCounts, ImportOptions, ImportStage, ImportState};
pub use integration::{
    Connection, ConnectionStatus, DaysToSync, FieldMappings, FieldMappingsInput, FieldRecord,
    FieldRef, FieldRole, Integration, IntegrationKey, PendoDomain, Settings, Timezone,
};
pub use mapping::{
    EventItem, EventSource, GuidePart, Mapping, MappingInput, MappingKind, MappingState,
    SyncedRange, Target,
};
pub use metric::{
    Activity, ChunkOutcome, ChunkRecord, ChunkStart, ChunkStats, ChunkStatus, ExportRow,
    MetricValue, ObjectRef, Release, RunFlag, RunKind, RunProgress, RunState, SkippedRows, SyncRun,
    CHUNK_LEASE_MINUTES, RUN_STALL_LIMIT_MINUTES,
};
pub use status::{MappingOutcome, MappingRun, MappingRunCounters, MappingRunView, MappingStatus};
pub use unmatched::{UnmatchedEntry, UnmatchedReason};
pub use window::Window;
